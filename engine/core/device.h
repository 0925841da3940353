// Device and dtype choice from user-facing strings ("cpu", "cuda", "cuda:1").
#pragma once

#include <ATen/ATen.h>
#include <string>

namespace personaplex {

// Parses "cpu", "cuda" or "cuda:N"; throws Error when the string is malformed
// or names a GPU that this build or machine does not have.
at::Device parse_device(const std::string &spec);

// The compute dtype the engine uses by default on a device: bf16 on CUDA,
// fp32 on CPU.
at::ScalarType default_dtype(const at::Device &device);

// Gives the device memory that the caching allocator holds but no tensor
// uses back to the device (what loading left: a quantized model's
// full-precision temporaries), so that memory in use is what the model
// takes. A no-op off CUDA.
void release_cached_memory(const at::Device &device);

// "float32", "bfloat16", "float16" (and "f32", "bf16", "f16") -> dtype.
at::ScalarType parse_dtype(const std::string &name);
std::string dtype_name(at::ScalarType dtype);

}  // namespace personaplex
