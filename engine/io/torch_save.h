// Reads a torch.save file holding a dict of tensors (what Python's torch.save
// and libtorch's Pickler write) without a general unpickler: the zip's
// central directory and the pickle's opcodes are checked against that format
// first (stored_zip.h, tensor_pickle.h), then each tensor is copied from its
// storage record, whose size must match what the pickle declares.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace personaplex {

// The dict's tensors in file order, contiguous CPU tensors owning their
// memory. Throws Error naming `name` and the field at fault.
std::vector<std::pair<std::string, at::Tensor>> read_torch_save(const std::string &name, std::string_view bytes);

// The same from a file (read whole: voice files are small).
std::vector<std::pair<std::string, at::Tensor>> read_torch_save_file(const std::string &path);

}  // namespace personaplex
