#include "ogg_opus_input.h"

#include <opus.h>

#include <cstring>

namespace ppserver {
namespace {

constexpr int kOpusRate = 48000;  // pre-skip and granules count at this rate
constexpr int kMaxPacketMs = 120;

uint32_t le(const std::string &s, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

bool starts_with(const std::string &s, const char *magic, size_t n) {
  return s.size() >= n && memcmp(s.data(), magic, n) == 0;
}

// The codec of an Ogg stream's first packet, when it is not Opus.
std::string codec_of(const std::string &first) {
  if (starts_with(first, "\x01vorbis", 7)) return "Vorbis";
  if (starts_with(first, "Speex   ", 8)) return "Speex";
  if (starts_with(first, "\x7f" "FLAC", 5)) return "FLAC";
  if (starts_with(first, "\x80theora", 7)) return "Theora";
  if (starts_with(first, "OpusTags", 8)) return "Opus without its OpusHead";
  std::string shown;
  for (size_t i = 0; i < first.size() && i < 8; ++i) {
    const char c = first[i];
    shown += (c >= 0x20 && c < 0x7f) ? c : '.';
  }
  return "an unknown codec (first packet \"" + shown + "\")";
}

}  // namespace

OggOpusInput::OggOpusInput(int rate) : rate_(rate) {}

OggOpusInput::~OggOpusInput() {
  if (decoder_) opus_multistream_decoder_destroy(decoder_);
}

bool OggOpusInput::fail(const std::string &why) {
  if (error_.empty()) error_ = why;
  return false;
}

bool OggOpusInput::push(const uint8_t *data, size_t size, std::vector<float> *pcm) {
  if (!error_.empty()) return false;
  const bool ok = reader_.push(data, size);
  OggPacketReader::Packet p;
  while (error_.empty() && reader_.next(&p)) packet(p, pcm);
  if (!ok) fail(reader_.error());
  return error_.empty();
}

bool OggOpusInput::packet(const OggPacketReader::Packet &p, std::vector<float> *pcm) {
  if (p.first_of_stream) expect_ = Expect::kHead;  // a chained stream starts over
  switch (expect_) {
    case Expect::kHead:
      if (!p.first_of_stream) return fail("the Ogg stream does not start with its header packet");
      if (!starts_with(p.data, "OpusHead", 8)) return fail("the Ogg stream is " + codec_of(p.data) + ", not Opus");
      if (!read_head(p.data)) return false;
      expect_ = Expect::kTags;
      return true;
    case Expect::kTags:
      if (!starts_with(p.data, "OpusTags", 8)) return fail("the Ogg Opus stream has no OpusTags after its OpusHead");
      expect_ = Expect::kAudio;
      return true;
    case Expect::kAudio:
      return decode(p.data, pcm);
  }
  return false;
}

bool OggOpusInput::read_head(const std::string &head) {
  if (head.size() < 19) return fail("the OpusHead is " + std::to_string(head.size()) + " bytes, shorter than 19");
  const int version = static_cast<uint8_t>(head[8]);
  if (version >> 4 != 0) return fail("OpusHead version " + std::to_string(version) + " is not supported");
  const int channels = static_cast<uint8_t>(head[9]);
  const int family = static_cast<uint8_t>(head[18]);
  if (channels < 1) return fail("the OpusHead has 0 channels");
  int streams = 1, coupled = channels - 1;
  unsigned char mapping[255] = {0, 1};
  if (family == 0) {
    if (channels > 2) return fail("the OpusHead has " + std::to_string(channels) + " channels in mapping family 0 (at most 2)");
  } else {
    if (head.size() < 21u + channels) return fail("the OpusHead's channel mapping table is cut short");
    streams = static_cast<uint8_t>(head[19]);
    coupled = static_cast<uint8_t>(head[20]);
    memcpy(mapping, head.data() + 21, channels);
  }
  int err = OPUS_OK;
  OpusMSDecoder *decoder = opus_multistream_decoder_create(rate_, channels, streams, coupled, mapping, &err);
  if (!decoder) return fail(std::string("the OpusHead's channel mapping is not valid: ") + opus_strerror(err));
  const int16_t gain = static_cast<int16_t>(le(head, 16, 2));  // Q7.8 dB
  if (gain != 0) opus_multistream_decoder_ctl(decoder, OPUS_SET_GAIN(gain));
  if (decoder_) opus_multistream_decoder_destroy(decoder_);
  decoder_ = decoder;
  channels_ = channels;
  input_rate_ = le(head, 12, 4);
  skip_ = int64_t(le(head, 10, 2)) * rate_ / kOpusRate;
  last_frame_ = rate_ / 50;
  frame_.resize(size_t(rate_) * kMaxPacketMs / 1000 * channels);
  return true;
}

// One packet (an empty one is a lost packet: concealed) to mono samples.
bool OggOpusInput::decode(const std::string &packet, std::vector<float> *pcm) {
  const auto *data = reinterpret_cast<const unsigned char *>(packet.data());
  const int max = rate_ * kMaxPacketMs / 1000;
  const int n = packet.empty()
      ? opus_multistream_decode_float(decoder_, nullptr, 0, frame_.data(), last_frame_, 0)
      : opus_multistream_decode_float(decoder_, data, opus_int32(packet.size()), frame_.data(), max, 0);
  if (n < 0)
    return fail("Opus packet " + std::to_string(packets_ + 1) + " cannot be decoded: " + opus_strerror(n));
  ++packets_;
  last_frame_ = n > 0 ? n : last_frame_;
  for (int i = 0; i < n; ++i) {
    if (skip_ > 0) {
      --skip_;
      continue;
    }
    float sum = 0;
    for (int c = 0; c < channels_; ++c) sum += frame_[size_t(i) * channels_ + c];
    pcm->push_back(sum / channels_);
  }
  return true;
}

}  // namespace ppserver
