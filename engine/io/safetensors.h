// Safetensors files: a memory-mapped, validated reader that loads tensors by
// name, and a writer that streams tensors one at a time.
//
// Format: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw little-endian data; offsets are relative to the data section.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace personaplex {

struct TensorInfo {
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  size_t begin = 0;  // byte offsets inside the data section
  size_t end = 0;
};

struct SafeTensorsHeader {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  size_t data_offset = 0;  // where the data section starts in the file
};

// Validates the header of the safetensors file whose `size` bytes are at
// `bytes`, as the reader does before anything is loaded: every shape's size
// is a checked product that must match its byte range inside the file.
SafeTensorsHeader parse_safetensors_header(const std::string &path, const uint8_t *bytes, size_t size);

class SafeTensors {
 public:
  // Maps the file and validates its whole header; throws Error naming the
  // file (and tensor) on any problem: missing, truncated, bad JSON, unknown
  // dtype, offsets outside the file or not matching the shape.
  explicit SafeTensors(const std::string &path);
  ~SafeTensors();
  SafeTensors(const SafeTensors &) = delete;
  SafeTensors &operator=(const SafeTensors &) = delete;

  const std::string &path() const { return path_; }
  bool contains(const std::string &name) const { return tensors_.count(name) != 0; }
  std::vector<std::string> names() const;
  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  const TensorInfo &info(const std::string &name) const;

  // A zero-copy CPU view in the stored dtype; valid while this object lives.
  at::Tensor view(const std::string &name) const;

  // An owned copy in `dtype` on `device`. With `shape`, a stored tensor of
  // another shape is an error naming the tensor and both shapes.
  at::Tensor load(const std::string &name, at::ScalarType dtype, const at::Device &device,
                  std::optional<std::vector<int64_t>> shape = std::nullopt) const;

 private:
  std::string path_;
  void *map_ = nullptr;
  size_t size_ = 0;
  const uint8_t *data_ = nullptr;  // start of the data section
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// What a writer needs to know of a tensor before any data is produced.
struct TensorSpec {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
};

// Writes `specs` in order; `produce(spec)` is asked for each tensor's data
// just before it is written (so huge files never sit in memory). The file is
// written under a temporary name and renamed when complete.
void write_safetensors(const std::string &path, const std::vector<TensorSpec> &specs,
                       const std::function<at::Tensor(const TensorSpec &)> &produce,
                       const std::map<std::string, std::string> &metadata = {});

// Convenience: writes a name -> tensor map as it is.
void write_safetensors(const std::string &path, const std::map<std::string, at::Tensor> &tensors,
                       const std::map<std::string, std::string> &metadata = {});

std::string shape_string(c10::IntArrayRef shape);

}  // namespace personaplex
