#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/bounded_json.h"

namespace personaplex {
namespace {

// Headers beyond this are not safetensors files but damage (the format's own
// implementations cap it at 100 MB).
constexpr uint64_t kMaxHeader = 100ull << 20;
// {name: {"shape": [...]}} and {"__metadata__": {...}} nest three levels.
constexpr int kMaxHeaderDepth = 8;

struct DtypeName {
  const char *name;
  at::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
    {"I32", at::kInt},   {"U8", at::kByte},  {"I8", at::kChar},       {"BOOL", at::kBool},
    {"F64", at::kDouble}};

std::optional<at::ScalarType> dtype_from_name(const std::string &name) {
  for (const auto &d : kDtypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

const char *dtype_to_name(at::ScalarType dtype) {
  for (const auto &d : kDtypes)
    if (d.dtype == dtype) return d.name;
  throw Error(std::string("safetensors cannot store dtype ") + c10::toString(dtype));
}

[[noreturn]] void fail(const std::string &path, const std::string &what) {
  throw Error(path + ": " + what);
}

TensorInfo parse_entry(const std::string &path, const std::string &name,
                       const nlohmann::json &entry, size_t data_size) {
  auto bad = [&](const std::string &why) { fail(path, "tensor '" + name + "': " + why); };
  if (!entry.is_object()) bad("header entry is not an object");
  TensorInfo info;
  auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) bad("no dtype");
  auto dt = dtype_from_name(dtype->get<std::string>());
  if (!dt) bad("unsupported dtype " + dtype->get<std::string>());
  info.dtype = *dt;
  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) bad("no shape");
  // Checked products: a shape whose size overflows is refused here, not
  // handed to libtorch (or to an allocation) later.
  uint64_t numel = 1;
  for (const auto &d : *shape) {
    if (!d.is_number_unsigned()) bad("shape has a non-integer or negative size");
    const uint64_t n = d.get<uint64_t>();
    if (n > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel) || numel > uint64_t(INT64_MAX))
      bad("shape " + shape->dump() + " has more elements than any file holds");
    info.shape.push_back(int64_t(n));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, uint64_t(c10::elementSize(info.dtype)), &nbytes))
    bad("shape " + shape->dump() + " has more bytes than any file holds");
  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    bad("no valid data_offsets");
  info.begin = (*offsets)[0].get<size_t>();
  info.end = (*offsets)[1].get<size_t>();
  if (info.begin > info.end || info.end > data_size)
    bad("data [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
        ") lies outside the file's " + std::to_string(data_size) +
        " data bytes (truncated file?)");
  if (info.end - info.begin != nbytes)
    bad("holds " + std::to_string(info.end - info.begin) + " bytes, shape " +
        shape_string(info.shape) + " needs " + std::to_string(nbytes));
  return info;
}

}  // namespace

std::string shape_string(c10::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafeTensors::SafeTensors(const std::string &path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail(path, "too short for a safetensors file (" + std::to_string(size_) + " bytes)");
  }
  map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, std::string("cannot map: ") + std::strerror(errno));
  }
  try {
    SafeTensorsHeader header = parse_safetensors_header(path, static_cast<const uint8_t *>(map_), size_);
    data_ = static_cast<const uint8_t *>(map_) + header.data_offset;
    tensors_ = std::move(header.tensors);
    metadata_ = std::move(header.metadata);
  } catch (...) {
    munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafeTensorsHeader parse_safetensors_header(const std::string &path, const uint8_t *bytes, size_t size) {
  if (size < 8) fail(path, "too short for a safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeader || header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " does not fit the file (" +
                   std::to_string(size) + " bytes): truncated or not safetensors");
  SafeTensorsHeader out;
  out.data_offset = 8 + header_len;
  const size_t data_size = size - out.data_offset;
  std::string problem;
  const nlohmann::json header = parse_bounded_json(
      std::string_view(reinterpret_cast<const char *>(bytes) + 8, header_len), kMaxHeaderDepth, &problem);
  if (header.is_discarded()) fail(path, "header is not valid JSON: " + problem);
  if (!header.is_object()) fail(path, "header is not a JSON object");
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it.value().is_object())
        for (auto m = it.value().begin(); m != it.value().end(); ++m)
          if (m.value().is_string()) out.metadata[m.key()] = m.value().get<std::string>();
      continue;
    }
    out.tensors[it.key()] = parse_entry(path, it.key(), it.value(), data_size);
  }
  return out;
}

SafeTensors::~SafeTensors() {
  if (map_) munmap(map_, size_);
  map_ = nullptr;
}

std::vector<std::string> SafeTensors::names() const {
  std::vector<std::string> out;
  for (const auto &kv : tensors_) out.push_back(kv.first);
  return out;
}

const TensorInfo &SafeTensors::info(const std::string &name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, "missing tensor '" + name + "'");
  return it->second;
}

at::Tensor SafeTensors::view(const std::string &name) const {
  const TensorInfo &ti = info(name);
  // from_blob wants a mutable pointer; the mapping is private and the engine
  // never writes through views.
  return at::from_blob(const_cast<uint8_t *>(data_ + ti.begin), ti.shape,
                       at::TensorOptions().dtype(ti.dtype));
}

at::Tensor SafeTensors::load(const std::string &name, at::ScalarType dtype,
                             const at::Device &device,
                             std::optional<std::vector<int64_t>> shape) const {
  const TensorInfo &ti = info(name);
  if (shape && *shape != ti.shape)
    fail(path_, "tensor '" + name + "' has shape " + shape_string(ti.shape) + ", expected " +
                    shape_string(*shape) + " (does the config match these weights?)");
  at::Tensor t = view(name);
  // Move in the stored dtype first (half the bytes for bf16), convert there.
  return t.to(device, /*non_blocking=*/false, /*copy=*/true).to(dtype);
}

void write_safetensors(const std::string &path, const std::vector<TensorSpec> &specs,
                       const std::function<at::Tensor(const TensorSpec &)> &produce,
                       const std::map<std::string, std::string> &metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto &s : specs) {
    size_t numel = 1;
    for (auto d : s.shape) numel *= static_cast<size_t>(d);
    size_t bytes = numel * c10::elementSize(s.dtype);
    header[s.name] = {{"dtype", dtype_to_name(s.dtype)},
                      {"shape", s.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section
  std::string tmp = path + ".partial";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot create");
  uint64_t n = text.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto &s : specs) {
    at::Tensor t = produce(s).to(at::kCPU).to(s.dtype).contiguous();
    if (t.sizes() != c10::IntArrayRef(s.shape))
      fail(path, "tensor '" + s.name + "' produced with shape " + shape_string(t.sizes()) +
                     ", declared " + shape_string(s.shape));
    out.write(static_cast<const char *>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  }
  out.close();
  if (!out || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, "write failed");
  }
}

void write_safetensors(const std::string &path, const std::map<std::string, at::Tensor> &tensors,
                       const std::map<std::string, std::string> &metadata) {
  std::vector<TensorSpec> specs;
  for (const auto &kv : tensors)
    specs.push_back({kv.first, kv.second.scalar_type(), kv.second.sizes().vec()});
  write_safetensors(
      path, specs, [&](const TensorSpec &s) { return tensors.at(s.name); }, metadata);
}

}  // namespace personaplex
