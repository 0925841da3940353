// The memory of the server's GPU, read through NVIDIA's management library
// (libnvidia-ml, loaded at run time: the server needs no CUDA to build, and
// on a machine without the driver there is simply no GPU metric).
#pragma once

#include <cstdint>
#include <string>

namespace ppserver {

struct GpuMemory {
  uint64_t used = 0, total = 0;
};

// `device` as on the command line ("cuda", "cuda:N", "auto"); false for the
// CPU or when the driver's library is not there.
bool read_gpu_memory(const std::string &device, GpuMemory *memory);

}  // namespace ppserver
