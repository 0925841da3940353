#include "cuda/chained_launch.cuh"

#include <atomic>
#include <cstdlib>

namespace personaplex::cuda {
namespace {

constexpr int kDevices = 64;

// 0: not asked yet, 1: yes, 2: no.
std::atomic<int> device_takes[kDevices];

bool ask(int device) {
  int major = 0;
  return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 9;
}

}  // namespace

bool chained_launch_enabled() {
  static const bool disabled = std::getenv("PERSONAPLEX_NO_CHAINED_LAUNCH") != nullptr;
  int device = 0;
  if (disabled || cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kDevices) return false;
  int known = device_takes[device].load(std::memory_order_relaxed);
  if (known == 0) {
    known = ask(device) ? 1 : 2;
    device_takes[device].store(known, std::memory_order_relaxed);
  }
  return known == 1;
}

}  // namespace personaplex::cuda
