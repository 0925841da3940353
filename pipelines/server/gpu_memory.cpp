#include "gpu_memory.h"

#include <dlfcn.h>

#include <cstdlib>
#include <sstream>
#include <vector>

namespace ppserver {
namespace {

// The few NVML entry points used, as the library declares them.
struct NvmlMemory {
  unsigned long long total, free, used;
};
using NvmlInit = int (*)();
using NvmlHandleByIndex = int (*)(unsigned, void **);
using NvmlMemoryInfo = int (*)(void *, NvmlMemory *);

struct Nvml {
  NvmlHandleByIndex handle_by_index = nullptr;
  NvmlMemoryInfo memory_info = nullptr;
  bool ok = false;
};

const Nvml &nvml() {
  static const Nvml lib = [] {
    Nvml n;
    void *so = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!so) return n;
    auto init = reinterpret_cast<NvmlInit>(dlsym(so, "nvmlInit_v2"));
    n.handle_by_index = reinterpret_cast<NvmlHandleByIndex>(dlsym(so, "nvmlDeviceGetHandleByIndex_v2"));
    n.memory_info = reinterpret_cast<NvmlMemoryInfo>(dlsym(so, "nvmlDeviceGetMemoryInfo"));
    n.ok = init && n.handle_by_index && n.memory_info && init() == 0;
    return n;
  }();
  return lib;
}

// NVML counts all of the machine's GPUs; CUDA only the visible ones.
int physical_index(int cuda_index) {
  const char *visible = getenv("CUDA_VISIBLE_DEVICES");
  if (!visible || !*visible) return cuda_index;
  std::vector<int> ids;
  std::stringstream list(visible);
  std::string item;
  while (std::getline(list, item, ',')) {
    char *end = nullptr;
    const long id = strtol(item.c_str(), &end, 10);
    if (end == item.c_str() || *end) return -1;  // UUIDs: not mapped here
    ids.push_back(int(id));
  }
  return cuda_index < int(ids.size()) ? ids[cuda_index] : -1;
}

}  // namespace

bool read_gpu_memory(const std::string &device, GpuMemory *memory) {
  int index = 0;
  if (device.rfind("cuda:", 0) == 0)
    index = atoi(device.c_str() + 5);
  else if (device != "cuda" && device != "auto")
    return false;
  const Nvml &n = nvml();
  if (!n.ok) return false;
  index = physical_index(index);
  void *handle = nullptr;
  NvmlMemory m{};
  if (index < 0 || n.handle_by_index(unsigned(index), &handle) != 0 || n.memory_info(handle, &m) != 0) return false;
  memory->used = m.used;
  memory->total = m.total;
  return true;
}

}  // namespace ppserver
