#include "io/stored_zip.h"

#include "core/error.h"

namespace personaplex {
namespace {

constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kDirectoryEntry = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr size_t kEndSize = 22, kEntrySize = 46, kLocalSize = 30;

uint16_t u16(std::string_view b, size_t at) {
  return uint16_t(uint8_t(b[at]) | uint8_t(b[at + 1]) << 8);
}
uint32_t u32(std::string_view b, size_t at) { return uint32_t(u16(b, at)) | uint32_t(u16(b, at + 2)) << 16; }

// The end-of-central-directory record: the last one whose comment reaches
// exactly to the end of the bytes.
size_t find_end(std::string_view b) {
  if (b.size() < kEndSize) return std::string_view::npos;
  const size_t lowest = b.size() > kEndSize + 0xffff ? b.size() - kEndSize - 0xffff : 0;
  for (size_t at = b.size() - kEndSize + 1; at-- > lowest;)
    if (u32(b, at) == kEndOfDirectory && at + kEndSize + u16(b, at + 20) == b.size()) return at;
  return std::string_view::npos;
}

}  // namespace

StoredZip::StoredZip(const std::string &name, std::string_view b) : name_(name) {
  auto bad = [&](const std::string &why) { return Error(name + ": not a readable zip archive: " + why); };
  const size_t end = find_end(b);
  if (end == std::string_view::npos) throw bad("no end-of-central-directory record");
  const uint16_t count = u16(b, end + 10);
  const uint32_t dir_size = u32(b, end + 12), dir_offset = u32(b, end + 16);
  if (u16(b, end + 4) != 0 || u16(b, end + 6) != 0 || u16(b, end + 8) != count)
    throw bad("multi-disk archives are not supported");
  if (count == 0xffff || dir_size == 0xffffffff || dir_offset == 0xffffffff)
    throw bad("zip64 archives are not supported (a voice file is far smaller)");
  if (uint64_t(dir_offset) + dir_size > end) throw bad("the central directory lies outside the file");
  size_t at = dir_offset;
  for (uint16_t i = 0; i < count; ++i) {
    if (at + kEntrySize > dir_offset + size_t(dir_size) || u32(b, at) != kDirectoryEntry)
      throw bad("central directory entry " + std::to_string(i) + " is damaged");
    const uint16_t method = u16(b, at + 10), name_len = u16(b, at + 28);
    const uint32_t packed = u32(b, at + 20), size = u32(b, at + 24), local = u32(b, at + 42);
    const size_t next = at + kEntrySize + name_len + u16(b, at + 30) + u16(b, at + 32);
    if (next > dir_offset + size_t(dir_size)) throw bad("central directory entry " + std::to_string(i) + " overruns it");
    const std::string entry_name(b.substr(at + kEntrySize, name_len));
    auto bad_entry = [&](const std::string &why) { return bad("entry '" + entry_name + "': " + why); };
    if (method != 0) throw bad_entry("compressed (method " + std::to_string(method) + "); only stored entries are read");
    if (packed != size) throw bad_entry("stored size " + std::to_string(packed) + " differs from its size " + std::to_string(size));
    if (size_t(local) + kLocalSize > dir_offset || u32(b, local) != kLocalHeader)
      throw bad_entry("no local header at offset " + std::to_string(local));
    const size_t data = size_t(local) + kLocalSize + u16(b, local + 26) + u16(b, local + 28);
    if (data > dir_offset || size > dir_offset - data)
      throw bad_entry(std::to_string(size) + " bytes at offset " + std::to_string(data) + " lie outside the file");
    if (!entries_.emplace(entry_name, b.substr(data, size)).second) throw bad_entry("stored twice");
    at = next;
  }
}

std::string_view StoredZip::entry(const std::string &name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error(name_ + ": no '" + name + "' in the archive");
  return it->second;
}

}  // namespace personaplex
