// The pickle of a torch.save file holding a dict of tensors, read by a
// restricted interpreter instead of a general unpickler: only the opcodes and
// globals that torch.save (and libtorch's Pickler) write for such a dict are
// known; anything else (other callables, lists, objects, nesting) is refused
// before any tensor exists. Nothing is allocated from a size in the bytes.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace personaplex {

// A tensor as the pickle describes it: a view of a storage record.
struct PickledTensor {
  std::string storage_key;  // the zip record "data/<key>"
  at::ScalarType dtype = at::kFloat;
  int64_t storage_numel = 0;  // elements the storage holds, as declared
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
};

// The dict's entries in file order. Throws Error naming `name` and the
// opcode, global or value at fault.
std::vector<std::pair<std::string, PickledTensor>> read_tensor_dict_pickle(const std::string &name,
                                                                          std::string_view pickle);

}  // namespace personaplex
