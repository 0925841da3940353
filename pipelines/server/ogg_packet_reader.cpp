#include "ogg_packet_reader.h"

#include <cstdio>
#include <cstring>

#include "ogg_opus_writer.h"  // ogg_crc

namespace ppserver {
namespace {

constexpr size_t kHeaderSize = 27;
constexpr uint8_t kContinued = 0x01, kBeginOfStream = 0x02, kEndOfStream = 0x04;
// An Opus packet is at most 120 ms of 6 frames of 1275 bytes; more than this
// is not audio.
constexpr size_t kMaxPacket = 256 * 1024;

uint32_t le32(const std::string &s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

// What bytes that should have been an Ogg page look like.
std::string describe(const std::string &bytes) {
  static const struct {
    const char *magic;
    size_t size;
    const char *what;
  } known[] = {
      {"\x1a\x45\xdf\xa3", 4, "WebM/Matroska"}, {"RIFF", 4, "RIFF (WAV)"}, {"fLaC", 4, "FLAC"},
      {"ID3", 3, "MP3"}, {"\xff\xfb", 2, "MP3"}, {"\xff\xf1", 2, "AAC (ADTS)"}, {"\xff\xf9", 2, "AAC (ADTS)"},
  };
  for (const auto &k : known)
    if (bytes.size() >= k.size && memcmp(bytes.data(), k.magic, k.size) == 0) return k.what;
  std::string hex;
  for (size_t i = 0; i < bytes.size() && i < 4; ++i) {
    char b[4];
    snprintf(b, sizeof b, "%s%02x", i ? " " : "", static_cast<uint8_t>(bytes[i]));
    hex += b;
  }
  return "bytes " + hex;
}

}  // namespace

bool OggPacketReader::fail(const std::string &why) {
  if (error_.empty()) error_ = why;
  pending_.clear();
  return false;
}

bool OggPacketReader::push(const uint8_t *data, size_t size) {
  if (!error_.empty()) return false;
  pending_.append(reinterpret_cast<const char *>(data), size);
  while (read_page()) {
  }
  return error_.empty();
}

bool OggPacketReader::next(Packet *packet) {
  if (ready_.empty()) return false;
  *packet = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

// Takes one whole page off pending_; false when it is not all there (or on an error).
bool OggPacketReader::read_page() {
  if (pending_.size() < 4) return false;  // enough to tell what came instead
  if (pending_.compare(0, 4, "OggS") != 0)
    return fail("not an Ogg stream: " + describe(pending_) + " at byte " + std::to_string(offset_) +
                " where an Ogg page should begin");
  if (pending_.size() < kHeaderSize) return false;
  if (pending_[4] != 0) return fail("unknown Ogg page version " + std::to_string(uint8_t(pending_[4])));
  const size_t segments = static_cast<uint8_t>(pending_[26]);
  if (pending_.size() < kHeaderSize + segments) return false;
  size_t body = 0;
  for (size_t i = 0; i < segments; ++i) body += static_cast<uint8_t>(pending_[kHeaderSize + i]);
  const size_t page_size = kHeaderSize + segments + body;
  if (pending_.size() < page_size) return false;

  std::string page = pending_.substr(0, page_size);
  pending_.erase(0, page_size);
  const uint64_t at = offset_;
  offset_ += page_size;
  const uint32_t crc = le32(page, 22);
  memset(&page[22], 0, 4);
  if (ogg_crc(reinterpret_cast<const uint8_t *>(page.data()), page.size()) != crc)
    return fail("damaged Ogg page at byte " + std::to_string(at) + " (checksum mismatch)");
  ++pages_;

  const uint8_t flags = static_cast<uint8_t>(page[5]);
  const uint32_t serial = le32(page, 14);
  if (flags & kBeginOfStream) {
    // The first stream; the next of a chain; or a new stream after data
    // pages of this one, without its end: the client's encoder restarted (a
    // stream multiplexed with this one would have begun before any data).
    if (!have_serial_ || stream_ended_ || (serial != serial_ && data_pages_ > 0)) {
      have_serial_ = true;
      data_pages_ = 0;
      stream_ended_ = false;
      serial_ = serial;
      partial_.clear();
      next_is_first_ = true;
    }
  } else if (!have_serial_) {
    return fail("the Ogg stream does not start with a beginning-of-stream page");
  }
  if (serial != serial_ || stream_ended_) return true;  // another logical stream
  if (!(flags & kBeginOfStream)) ++data_pages_;

  // A continued packet whose start was never seen is dropped; so is the start
  // of one whose continuation is missing.
  bool skipping = (flags & kContinued) && partial_.empty();
  if (!(flags & kContinued)) partial_.clear();
  size_t pos = kHeaderSize + segments;
  for (size_t i = 0; i < segments; ++i) {
    const size_t n = static_cast<uint8_t>(page[kHeaderSize + i]);
    if (!skipping) partial_.append(page, pos, n);
    pos += n;
    if (partial_.size() > kMaxPacket) return fail("an Ogg packet larger than " + std::to_string(kMaxPacket) + " bytes");
    if (n == 255) continue;
    if (!skipping) {
      ready_.push_back({std::move(partial_), next_is_first_});
      next_is_first_ = false;
    }
    partial_.clear();
    skipping = false;
  }
  if (flags & kEndOfStream) {
    stream_ended_ = true;
    partial_.clear();
  }
  return true;
}

}  // namespace ppserver
