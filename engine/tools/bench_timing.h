// Timing helpers shared by the benchmark programs: device synchronization
// around a timed call, median/p99 summaries, the GPU's name and memory.
// With the CUDA runtime's headers (PERSONAPLEX_BENCH_CUDART) it uses them
// directly; otherwise it synchronizes through libtorch's stream API.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#ifdef PERSONAPLEX_BENCH_CUDART
#include <cuda_runtime_api.h>
#endif

extern char **environ;  // POSIX

namespace personaplex::bench {

inline void synchronize(const at::Device &device) {
  if (device.is_cpu()) return;
#ifdef PERSONAPLEX_BENCH_CUDART
  if (device.is_cuda()) {
    cudaDeviceSynchronize();
    return;
  }
#endif
  c10::impl::VirtualGuardImpl impl(device.type());
  impl.getStream(device).synchronize();
}

// Milliseconds that fn takes, device work included.
template <typename Fn>
double timed(const at::Device &device, Fn fn) {
  synchronize(device);
  auto t0 = std::chrono::steady_clock::now();
  fn();
  synchronize(device);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// median, p99, min and max of the samples; null when there are none.
inline nlohmann::json summary(std::vector<double> ms) {
  if (ms.empty()) return nullptr;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, size_t(q * double(ms.size() - 1) + 0.5))]; };
  return {{"median", at(0.5)}, {"p99", at(0.99)}, {"min", ms.front()}, {"max", ms.back()}};
}

inline std::string device_name(const at::Device &device) {
#ifdef PERSONAPLEX_BENCH_CUDART
  if (device.is_cuda()) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device.has_index() ? device.index() : 0) == cudaSuccess) return prop.name;
  }
#endif
  return device.str();
}

// Device memory in use (all processes) in GiB, or null off CUDA.
inline nlohmann::json gpu_memory_gib(const at::Device &device) {
#ifdef PERSONAPLEX_BENCH_CUDART
  if (device.is_cuda()) {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return double(total - free) / (1 << 30);
  }
#endif
  (void)device;
  return nullptr;
}

// The engine's choices this run was made with: every PERSONAPLEX_ variable
// of the environment, so that a JSON says which path it measured.
inline nlohmann::json environment_choices() {
  nlohmann::json choices = nlohmann::json::object();
  for (char **e = environ; e != nullptr && *e != nullptr; ++e) {
    const char *eq = std::strchr(*e, '=');
    if (eq != nullptr && std::strncmp(*e, "PERSONAPLEX_", 12) == 0) choices[std::string(*e, size_t(eq - *e))] = eq + 1;
  }
  return choices;
}

}  // namespace personaplex::bench
