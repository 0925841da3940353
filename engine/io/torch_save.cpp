#include "io/torch_save.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/stored_zip.h"
#include "io/tensor_pickle.h"

namespace personaplex {
namespace {

// The archive's one top-level folder: torch.save names it after the file.
std::string archive_prefix(const std::string &name, const StoredZip &zip) {
  std::string prefix;
  for (const auto &e : zip.entries()) {
    const size_t slash = e.first.find('/');
    if (slash == std::string::npos || e.first.substr(slash) != "/data.pkl") continue;
    if (!prefix.empty()) throw Error(name + ": the archive holds more than one data.pkl");
    prefix = e.first.substr(0, slash + 1);
  }
  if (prefix.empty()) throw Error(name + ": no data.pkl in the archive: not a torch.save file");
  return prefix;
}

at::Tensor tensor_of(const std::string &name, const std::string &key, const PickledTensor &t,
                     std::string_view record) {
  int64_t bytes = 0;
  if (__builtin_mul_overflow(t.storage_numel, int64_t(c10::elementSize(t.dtype)), &bytes) ||
      uint64_t(bytes) != record.size())
    throw Error(name + ": tensor '" + key + "': its storage record holds " + std::to_string(record.size()) +
                " bytes, the pickle declares " + std::to_string(t.storage_numel) + " " +
                c10::toString(t.dtype) + " elements");
  at::Tensor storage = at::empty({t.storage_numel}, at::TensorOptions().dtype(t.dtype));
  if (bytes) std::memcpy(storage.data_ptr(), record.data(), record.size());
  return storage.as_strided(t.sizes, t.strides, t.offset).clone(at::MemoryFormat::Contiguous);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> read_torch_save(const std::string &name, std::string_view bytes) {
  const StoredZip zip(name, bytes);
  const std::string prefix = archive_prefix(name, zip);
  if (zip.contains(prefix + "byteorder") && zip.entry(prefix + "byteorder") != "little")
    throw Error(name + ": byteorder '" + std::string(zip.entry(prefix + "byteorder").substr(0, 16)) +
                "': only little-endian files are read");
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto &[key, t] : read_tensor_dict_pickle(name, zip.entry(prefix + "data.pkl"))) {
    const std::string record = prefix + "data/" + t.storage_key;
    if (!zip.contains(record)) throw Error(name + ": tensor '" + key + "': no storage record '" + record + "'");
    out.emplace_back(key, tensor_of(name, key, t, zip.entry(record)));
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> read_torch_save_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": cannot read the file");
  return read_torch_save(path, bytes);
}

}  // namespace personaplex
