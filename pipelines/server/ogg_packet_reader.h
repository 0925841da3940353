// Reads the packets of one logical Ogg stream (RFC 3533) from bytes that
// arrive in pieces cut anywhere: a page may come in several pieces, several
// pages in one. Checks each page's capture pattern, version and checksum,
// joins packets continued across pages, and follows a chained stream (a new
// beginning-of-stream page after the last one ended, or after its data
// pages: an encoder restarted without ending its stream). Pages of other
// logical streams multiplexed with it (begun before its data) are skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace ppserver {

class OggPacketReader {
 public:
  struct Packet {
    std::string data;
    bool first_of_stream = false;  // the first packet after a beginning-of-stream page
  };

  // Takes more bytes. False once the bytes are not an Ogg stream; error()
  // then says what was found.
  bool push(const uint8_t *data, size_t size);
  // The next complete packet, in order; false when none is ready.
  bool next(Packet *packet);

  const std::string &error() const { return error_; }
  uint64_t pages() const { return pages_; }

 private:
  bool read_page();
  bool fail(const std::string &why);

  std::string pending_;  // bytes of the page not yet complete
  std::string partial_;  // a packet continued on the next page
  std::deque<Packet> ready_;
  bool have_serial_ = false, stream_ended_ = false, next_is_first_ = false;
  uint32_t serial_ = 0;
  uint64_t offset_ = 0;  // of pending_'s first byte in the whole stream
  uint64_t pages_ = 0;
  uint64_t data_pages_ = 0;  // of the current stream, after its first
  std::string error_;
};

}  // namespace ppserver
