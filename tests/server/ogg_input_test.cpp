// The server's Ogg Opus input (pipelines/server/ogg_opus_input.h) on the
// streams real clients write: OpusHead input rates that are not Opus's
// (44100, 96000, 22050), 8 kHz and 24 kHz encoders, stereo, packets from
// 2.5 to 120 ms, several packets per page, packets continued across pages,
// chained streams, the bytes cut anywhere; and streams that are not Ogg Opus,
// each named in the error.
#include <glib.h>

#include <cmath>
#include <cstring>

#include "ogg_opus_input.h"
#include "ogg_opus_maker.h"

using ppserver::OggOpusInput;

namespace {

constexpr int kRate = 48000;

struct Decoded {
  std::vector<float> pcm;
  std::string error;
  bool ok = false;
};

// Feeds `ogg` in pieces of the given sizes, over and over.
Decoded decode(const std::string &ogg, std::vector<size_t> pieces = {1, 7, 300, 4096, 27, 65536}) {
  OggOpusInput input(kRate);
  Decoded d;
  d.ok = true;
  size_t i = 0;
  for (size_t at = 0; at < ogg.size() && d.ok; ++i) {
    const size_t n = std::min(pieces[i % pieces.size()], ogg.size() - at);
    d.ok = input.push(reinterpret_cast<const uint8_t *>(ogg.data()) + at, n, &d.pcm);
    at += n;
  }
  d.error = input.error();
  return d;
}

double rms(const std::vector<float> &x) {
  double e = 0;
  for (float v : x) e += double(v) * v;
  return x.empty() ? 0 : std::sqrt(e / x.size());
}

// The frequency of a tone, from its zero crossings.
double frequency(const std::vector<float> &x, int rate) {
  int crossings = 0;
  for (size_t i = 1; i < x.size(); ++i) crossings += (x[i - 1] < 0) != (x[i] < 0);
  return crossings / 2.0 / (double(x.size()) / rate);
}

// Decodes and checks the tone comes back: its length (within one packet),
// level and pitch.
void expect_tone(const oggmaker::Options &o, double seconds, double hz, float amplitude, float expected_rms) {
  const std::vector<float> pcm = oggmaker::sine(hz, o.encoder_rate, seconds, o.channels, amplitude);
  const std::string ogg = oggmaker::ogg_opus(pcm, o);
  const Decoded d = decode(ogg);
  if (!d.ok) g_error("head rate %u, %d ch, %.1f ms: %s", o.head_rate, o.channels, o.packet_ms, d.error.c_str());
  const double got = double(d.pcm.size()) / kRate;
  // Padded to whole packets, less the encoder's look-ahead (pre-skip, 6.5 ms).
  g_assert_cmpfloat(std::fabs(got - seconds), <=, o.packet_ms / 1000 + 0.0066);
  // Skip the encoder's start-up, then compare.
  const std::vector<float> steady(d.pcm.begin() + kRate / 10, d.pcm.end() - kRate / 10);
  g_assert_cmpfloat(std::fabs(rms(steady) - expected_rms), <, 0.15 * expected_rms);
  g_assert_cmpfloat(std::fabs(frequency(steady, kRate) - hz), <, 0.02 * hz);
}

void test_head_rates() {
  for (uint32_t head_rate : {44100u, 96000u, 22050u, 48000u, 16000u}) {
    oggmaker::Options o;
    o.head_rate = head_rate;
    expect_tone(o, 2.0, 440, 0.5f, 0.5f / std::sqrt(2.0f));
  }
}

void test_encoder_rates() {
  oggmaker::Options o;
  o.encoder_rate = o.head_rate = 8000;  // telephone band
  expect_tone(o, 2.0, 300, 0.5f, 0.5f / std::sqrt(2.0f));
  o.encoder_rate = o.head_rate = 24000;
  o.packet_ms = 100;  // one packet per page of 100 ms, from 24 kHz
  expect_tone(o, 2.0, 440, 0.5f, 0.5f / std::sqrt(2.0f));
}

void test_packet_durations() {
  for (double ms : {2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0}) {
    oggmaker::Options o;
    o.packet_ms = ms;
    o.bitrate = 64000;
    expect_tone(o, 1.5, 440, 0.5f, 0.5f / std::sqrt(2.0f));
  }
}

void test_stereo_downmixed() {
  oggmaker::Options o;
  o.channels = 2;
  o.head_rate = 44100;
  expect_tone(o, 2.0, 440, 0.5f, 0.5f / std::sqrt(2.0f));
  // Left only: half the level in mono.
  std::vector<float> pcm = oggmaker::sine(440, 48000, 2.0, 2);
  for (size_t i = 1; i < pcm.size(); i += 2) pcm[i] = 0;
  o.bitrate = 96000;
  const Decoded d = decode(oggmaker::ogg_opus(pcm, o));
  g_assert_true(d.ok);
  const std::vector<float> steady(d.pcm.begin() + kRate / 10, d.pcm.end() - kRate / 10);
  g_assert_cmpfloat(std::fabs(rms(steady) - 0.25 / std::sqrt(2.0)), <, 0.03);
}

void test_page_layouts() {
  oggmaker::Options o;
  o.packet_ms = 100;
  o.bitrate = 64000;  // ~800 bytes a packet: 4 lacing values
  o.packets_per_page = 5;
  expect_tone(o, 2.0, 440, 0.5f, 0.5f / std::sqrt(2.0f));
  o.packets_per_page = 1;
  o.max_segments = 2;  // every packet continued on the next page
  expect_tone(o, 2.0, 440, 0.5f, 0.5f / std::sqrt(2.0f));
  // The same stream a byte at a time, and all in one piece.
  const std::string ogg = oggmaker::ogg_opus(oggmaker::sine(440, 48000, 1.0), o);
  const Decoded bytewise = decode(ogg, {1}), whole = decode(ogg, {ogg.size()});
  g_assert_true(bytewise.ok && whole.ok);
  g_assert_cmpuint(bytewise.pcm.size(), ==, whole.pcm.size());
  g_assert_true(memcmp(bytewise.pcm.data(), whole.pcm.data(), whole.pcm.size() * sizeof(float)) == 0);
}

void test_chained() {
  oggmaker::Options o;
  const std::string a = oggmaker::ogg_opus(oggmaker::sine(440, 48000, 1.0), o);
  o.serial = 77;
  o.channels = 2;
  const std::string b = oggmaker::ogg_opus(oggmaker::sine(440, 48000, 1.0, 2), o);
  const Decoded d = decode(a + b);
  g_assert_true(d.ok);
  g_assert_cmpfloat(std::fabs(d.pcm.size() / double(kRate) - 2.0), <, 0.05);
  // An encoder restarted without ending its stream: the new one is followed.
  o.end_of_stream = false;
  o.serial = 78;
  const std::string unended = oggmaker::ogg_opus(oggmaker::sine(440, 48000, 1.0, 2), o);
  const Decoded restarted = decode(unended + b);
  g_assert_true(restarted.ok);
  g_assert_cmpfloat(std::fabs(restarted.pcm.size() / double(kRate) - 2.0), <, 0.05);
  // A second stream begun before any data (multiplexed): skipped.
  const std::string other = oggmaker::ogg_page(std::string("\x01vorbis", 7) + std::string(23, '\0'), 2, 99, 0, 0);
  const size_t first_page = 27 + 1 + size_t(guint8(a[27]));
  const Decoded muxed = decode(a.substr(0, first_page) + other + a.substr(first_page));
  g_assert_true(muxed.ok);
  g_assert_cmpfloat(std::fabs(muxed.pcm.size() / double(kRate) - 1.0), <, 0.05);
}

void expect_error(const std::string &bytes, const std::string &part) {
  const Decoded d = decode(bytes);
  if (d.ok || d.error.find(part) == std::string::npos)
    g_error("expected an error with \"%s\", got %s \"%s\"", part.c_str(), d.ok ? "success" : "error", d.error.c_str());
}

void test_not_ogg_opus() {
  const std::string vorbis_head = std::string("\x01vorbis", 7) + std::string(23, '\0');
  expect_error(oggmaker::ogg_page(vorbis_head, 2, 1, 0, 0), "the Ogg stream is Vorbis, not Opus");
  expect_error(oggmaker::ogg_page(std::string("Speex   ", 8) + std::string(72, '\0'), 2, 1, 0, 0), "Speex, not Opus");
  expect_error(oggmaker::ogg_page("hello", 2, 1, 0, 0), "unknown codec (first packet \"hello\")");
  expect_error(std::string("\x1a\x45\xdf\xa3", 4) + std::string(100, 'x'), "not an Ogg stream: WebM/Matroska at byte 0");
  expect_error("RIFF....WAVEfmt ", "not an Ogg stream: RIFF (WAV)");
  std::string garbage(5000, '\0');
  for (char &c : garbage) c = char(g_random_int_range(0, 256));
  garbage[0] = 'x';
  expect_error(garbage, "not an Ogg stream: bytes 78");
  // A good stream, then junk where the next page should be.
  const std::string ogg = oggmaker::ogg_opus(oggmaker::sine(440, 48000, 0.5), oggmaker::Options());
  expect_error(ogg + "junk", "at byte " + std::to_string(ogg.size()));
  std::string damaged = ogg;
  damaged[damaged.size() - 10] ^= 0x55;
  expect_error(damaged, "checksum mismatch");
  // OpusHead without OpusTags; a head that is cut short; three channels in family 0.
  std::string head = "OpusHead";
  head += std::string("\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00", 11);
  expect_error(oggmaker::ogg_page(head, 2, 1, 0, 0) + oggmaker::ogg_page("audio", 0, 1, 1, 0), "no OpusTags");
  expect_error(oggmaker::ogg_page(head.substr(0, 12), 2, 1, 0, 0), "shorter than 19");
  std::string three = head;
  three[9] = 3;
  expect_error(oggmaker::ogg_page(three, 2, 1, 0, 0), "3 channels in mapping family 0");
  // Pages of a stream whose beginning was never sent.
  expect_error(oggmaker::ogg_page("audio", 0, 1, 5, 960), "beginning-of-stream");
}

}  // namespace

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, nullptr);
  g_test_add_func("/ogg-input/head-rates", test_head_rates);
  g_test_add_func("/ogg-input/encoder-rates", test_encoder_rates);
  g_test_add_func("/ogg-input/packet-durations", test_packet_durations);
  g_test_add_func("/ogg-input/stereo", test_stereo_downmixed);
  g_test_add_func("/ogg-input/page-layouts", test_page_layouts);
  g_test_add_func("/ogg-input/chained", test_chained);
  g_test_add_func("/ogg-input/not-ogg-opus", test_not_ogg_opus);
  return g_test_run();
}
