#include "ogg_opus_writer.h"

#include <array>

namespace ppserver {
namespace {

constexpr uint8_t kBeginOfStream = 0x02;

const std::array<uint32_t, 256> &crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t r = i << 24;
      for (int k = 0; k < 8; ++k) r = (r & 0x80000000u) ? (r << 1) ^ 0x04c11db7u : r << 1;
      t[i] = r;
    }
    return t;
  }();
  return table;
}

void put_le(std::string *out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

uint32_t ogg_crc(const uint8_t *data, size_t size) {
  const auto &table = crc_table();
  uint32_t crc = 0;
  for (size_t i = 0; i < size; ++i) crc = (crc << 8) ^ table[((crc >> 24) ^ data[i]) & 0xff];
  return crc;
}

std::string OggOpusWriter::page(const std::vector<std::string> &packets, int64_t granule, uint8_t flags) {
  std::string lacing, body;
  for (const std::string &p : packets) {
    // A packet of n bytes: n / 255 segments of 255, then one of n % 255
    // (possibly 0, which ends it).
    for (size_t left = p.size();; left -= 255) {
      lacing.push_back(static_cast<char>(left < 255 ? left : 255));
      if (left < 255) break;
    }
    body += p;
  }
  std::string out = "OggS";
  out.push_back(0);  // version
  out.push_back(static_cast<char>(flags));
  put_le(&out, static_cast<uint64_t>(granule), 8);
  put_le(&out, serial_, 4);
  put_le(&out, sequence_++, 4);
  put_le(&out, 0, 4);  // CRC, filled below
  out.push_back(static_cast<char>(lacing.size()));
  out += lacing;
  out += body;
  const uint32_t crc = ogg_crc(reinterpret_cast<const uint8_t *>(out.data()), out.size());
  for (int i = 0; i < 4; ++i) out[22 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return out;
}

std::vector<std::string> OggOpusWriter::header_pages(const std::string &opus_head, const std::string &opus_tags) {
  return {page({opus_head}, 0, kBeginOfStream), page({opus_tags}, 0, 0)};
}

std::string OggOpusWriter::audio_page(const std::vector<std::string> &packets, int64_t samples_48k) {
  granule_ += samples_48k;
  return page(packets, granule_, 0);
}

}  // namespace ppserver
