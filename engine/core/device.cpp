#include "core/device.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "core/error.h"

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace personaplex {

at::Device parse_device(const std::string &spec) {
  if (spec.empty() || spec == "cpu")
    return at::Device(at::kCPU);
  if (spec.rfind("cuda", 0) != 0)
    throw Error("unknown device '" + spec + "' (expected cpu, cuda or cuda:N)");
  int index = 0;
  if (spec.size() > 4) {
    if (spec[4] != ':' || spec.size() == 5 ||
        spec.find_first_not_of("0123456789", 5) != std::string::npos)
      throw Error("unknown device '" + spec + "' (expected cpu, cuda or cuda:N)");
    index = std::stoi(spec.substr(5));
  }
  if (!at::hasCUDA())
    throw Error("device '" + spec + "' requested, but this build or machine has no CUDA");
  int count = at::detail::getCUDAHooks().getNumGPUs();
  if (index >= count)
    throw Error("device '" + spec + "' requested, but only " + std::to_string(count) +
                " CUDA device(s) are present");
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

at::ScalarType default_dtype(const at::Device &device) {
  return device.is_cuda() ? at::kBFloat16 : at::kFloat;
}

at::ScalarType parse_dtype(const std::string &name) {
  if (name == "float32" || name == "f32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "f16" || name == "fp16") return at::kHalf;
  throw Error("unknown dtype '" + name + "' (expected float32, bfloat16 or float16)");
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kLong: return "int64";
    default: return c10::toString(dtype);
  }
}

void release_cached_memory(const at::Device &device) {
#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  (void)device;
}

}  // namespace personaplex
