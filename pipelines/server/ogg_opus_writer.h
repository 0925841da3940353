// An Ogg Opus stream written page by page as the packets come (RFC 7845):
// the OpusHead and OpusTags pages, then one page per packet, each out at
// once. (oggmux holds two packets back to learn which is the last: 160 ms
// of delay in a conversation at 80 ms per packet.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ppserver {

class OggOpusWriter {
 public:
  explicit OggOpusWriter(uint32_t serial) : serial_(serial) {}

  // The two header pages (the packets from the encoder's caps).
  std::vector<std::string> header_pages(const std::string &opus_head, const std::string &opus_tags);

  // A page holding `packets` (normally one), which decode to `samples_48k`
  // samples at 48 kHz in all.
  std::string audio_page(const std::vector<std::string> &packets, int64_t samples_48k);

  int64_t granule() const { return granule_; }

 private:
  std::string page(const std::vector<std::string> &packets, int64_t granule, uint8_t flags);

  uint32_t serial_;
  uint32_t sequence_ = 0;
  int64_t granule_ = 0;
};

// Ogg's CRC-32 (polynomial 0x04c11db7, no reflection, zero start).
uint32_t ogg_crc(const uint8_t *data, size_t size);

}  // namespace ppserver
