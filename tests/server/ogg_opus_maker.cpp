#include "ogg_opus_maker.h"

#include <opus.h>

#include <cmath>
#include <stdexcept>

namespace oggmaker {
namespace {

void put(std::string *s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s->push_back(char((v >> (8 * i)) & 0xff));
}

uint32_t crc(const std::string &page) {
  uint32_t c = 0;
  for (unsigned char byte : page) {
    c ^= uint32_t(byte) << 24;
    for (int k = 0; k < 8; ++k) c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
  }
  return c;
}

// Writes packets into pages of at most `max_segments` lacing values.
class PageWriter {
 public:
  PageWriter(uint32_t serial, int max_segments) : serial_(serial), max_segments_(max_segments) {}

  // Adds a packet; `flush` ends the page after it.
  void add(const std::string &packet, int64_t granule, bool flush, bool last, std::string *out) {
    size_t at = 0;
    for (bool more = true; more;) {
      const size_t n = std::min<size_t>(255, packet.size() - at);
      lacing_.push_back(uint8_t(n));
      body_ += packet.substr(at, n);
      at += n;
      more = n == 255;  // a packet of a multiple of 255 ends with a 0
      if (lacing_.size() == size_t(max_segments_) && (more || !flush)) {
        emit(more ? -1 : granule, false, out);
        continued_ = more;
      }
    }
    if (flush && !lacing_.empty()) emit(granule, last, out);
  }

 private:
  void emit(int64_t granule, bool last, std::string *out) {
    std::string page = "OggS";
    page.push_back(0);
    page.push_back(char((continued_ ? 1 : 0) | (sequence_ == 0 ? 2 : 0) | (last ? 4 : 0)));
    put(&page, uint64_t(granule), 8);
    put(&page, serial_, 4);
    put(&page, sequence_++, 4);
    put(&page, 0, 4);
    page.push_back(char(lacing_.size()));
    for (uint8_t l : lacing_) page.push_back(char(l));
    page += body_;
    const uint32_t c = crc(page);
    for (int i = 0; i < 4; ++i) page[22 + i] = char((c >> (8 * i)) & 0xff);
    *out += page;
    lacing_.clear();
    body_.clear();
    continued_ = false;
  }

  uint32_t serial_, sequence_ = 0;
  int max_segments_;
  std::vector<uint8_t> lacing_;
  std::string body_;
  bool continued_ = false;
};

}  // namespace

std::string ogg_page(const std::string &packet, uint8_t flags, uint32_t serial, uint32_t sequence, int64_t granule) {
  std::string page = "OggS";
  page.push_back(0);
  page.push_back(char(flags));
  put(&page, uint64_t(granule), 8);
  put(&page, serial, 4);
  put(&page, sequence, 4);
  put(&page, 0, 4);
  std::string lacing;
  size_t left = packet.size();
  for (;; left -= 255) {
    lacing.push_back(char(std::min<size_t>(left, 255)));
    if (left < 255) break;
  }
  page.push_back(char(lacing.size()));
  page += lacing + packet;
  const uint32_t c = crc(page);
  for (int i = 0; i < 4; ++i) page[22 + i] = char((c >> (8 * i)) & 0xff);
  return page;
}

std::string ogg_opus(const std::vector<float> &pcm, const Options &o) {
  int err = 0;
  OpusEncoder *enc = opus_encoder_create(o.encoder_rate, o.channels, OPUS_APPLICATION_VOIP, &err);
  if (!enc) throw std::runtime_error(opus_strerror(err));
  opus_encoder_ctl(enc, OPUS_SET_BITRATE(o.bitrate));
  opus_int32 lookahead = 0;
  opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(&lookahead));
  const int to_48k = 48000 / o.encoder_rate;

  std::string head = "OpusHead";
  head.push_back(1);
  head.push_back(char(o.channels));
  put(&head, uint64_t(lookahead * to_48k), 2);
  put(&head, o.head_rate, 4);
  put(&head, 0, 2);
  head.push_back(0);
  std::string tags = "OpusTags";
  put(&tags, 4, 4);
  tags += "test";
  put(&tags, 0, 4);

  PageWriter pages(o.serial, o.max_segments);
  std::string out;
  pages.add(head, 0, true, false, &out);
  pages.add(tags, 0, true, false, &out);
  const int frame = int(std::lround(o.encoder_rate * o.packet_ms / 1000));
  const size_t frames = pcm.size() / o.channels;
  std::vector<float> block(size_t(frame) * o.channels);
  std::vector<unsigned char> packet(8000);
  int64_t granule = 0;
  int in_page = 0;
  for (size_t at = 0; at < frames; at += frame) {
    std::fill(block.begin(), block.end(), 0.0f);
    const size_t n = std::min<size_t>(frame, frames - at);
    std::copy(pcm.begin() + at * o.channels, pcm.begin() + (at + n) * o.channels, block.begin());
    const int bytes = opus_encode_float(enc, block.data(), frame, packet.data(), opus_int32(packet.size()));
    if (bytes < 0) throw std::runtime_error(opus_strerror(bytes));
    granule += int64_t(frame) * to_48k;
    const bool last = at + frame >= frames;
    pages.add(std::string(reinterpret_cast<char *>(packet.data()), bytes), granule,
              ++in_page == o.packets_per_page || last, last && o.end_of_stream, &out);
    if (in_page == o.packets_per_page) in_page = 0;
  }
  opus_encoder_destroy(enc);
  return out;
}

std::vector<float> sine(double hz, int rate, double seconds, int channels, float amplitude) {
  const size_t n = size_t(rate * seconds);
  std::vector<float> out(n * channels);
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < channels; ++c) out[i * channels + c] = amplitude * float(std::sin(2 * M_PI * hz * i / rate));
  return out;
}

}  // namespace oggmaker
