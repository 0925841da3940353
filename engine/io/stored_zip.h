// A zip archive of stored (uncompressed) entries, as torch.save writes it,
// read through its central directory from bytes in memory. Every offset and
// size is checked against the bytes before use: a damaged or crafted archive
// is an Error naming the file and the field, never a read out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace personaplex {

class StoredZip {
 public:
  // `name` is only for messages; `bytes` must outlive this object.
  StoredZip(const std::string &name, std::string_view bytes);

  // Entry names in the archive, as stored (e.g. "voice/data.pkl").
  const std::map<std::string, std::string_view> &entries() const { return entries_; }
  // The entry's bytes, or an Error naming the entry when it is missing.
  std::string_view entry(const std::string &name) const;
  bool contains(const std::string &name) const { return entries_.count(name) != 0; }

 private:
  std::string name_;
  std::map<std::string, std::string_view> entries_;
};

}  // namespace personaplex
