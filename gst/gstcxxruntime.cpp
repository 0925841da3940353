#include "gstcxxruntime.h"

#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <initializer_list>

namespace gstpersonaplex {
namespace {

bool wanted(const char *path) {
  const char *base = std::strrchr(path, '/');
  base = base ? base + 1 : path;
  for (const char *prefix : {"libstdc++.so", "libgcc_s.so"})
    if (std::strncmp(base, prefix, std::strlen(prefix)) == 0) return true;
  return false;
}

int promote(struct dl_phdr_info *info, size_t, void *data) {
  const char *path = info->dlpi_name;
  if (!path || !*path || !wanted(path)) return 0;
  // RTLD_NOLOAD: only changes the flags of the loaded library. The handle
  // is kept: the library stays loaded for the process's lifetime anyway.
  if (dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
    static_cast<std::vector<std::string> *>(data)->push_back(path);
  return 0;
}

}  // namespace

std::vector<std::string> cxx_runtime_to_global_scope() {
  std::vector<std::string> promoted;
  dl_iterate_phdr(promote, &promoted);
  return promoted;
}

}  // namespace gstpersonaplex
