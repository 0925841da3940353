// Chained launches (programmatic dependent launch, compute 9.0+): a kernel
// launched this way may be scheduled while the kernel before it on the
// stream is finishing, and waits for that kernel's results only where it
// says so. At batch 1 a step is a chain of ~900 short kernels, and each one's
// launch and ramp-up otherwise starts after the previous one has drained.
//
// The rule every kernel launched by launch_chained keeps: wait_for_previous()
// before it reads anything an earlier kernel wrote or writes anything an
// earlier kernel reads. What it reads of constant data (weights) it may
// load before. It then calls start_next(), letting the kernel after it be
// scheduled (one kernel ahead: a chained kernel's successor is held until
// every block of it has waited). A kernel of libtorch or cuBLAS next to a
// chained one is ordered as usual.
#pragma once

#include <cuda_runtime.h>

namespace personaplex::cuda {

// Whether the current device takes chained launches (compute 9.0+) and
// PERSONAPLEX_NO_CHAINED_LAUNCH is unset.
bool chained_launch_enabled();

__device__ __forceinline__ void wait_for_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void start_next() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, shared, stream>>>(args...) in clusters of `cluster`
// blocks along x (compute 9.0+; 1: no clusters), chained where the device
// takes it; returns the launch's error.
template <typename... Params, typename... Args>
cudaError_t launch_chained_clusters(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                                    cudaStream_t stream, unsigned cluster, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute attributes[2] = {};
  unsigned count = 0;
  if (chained_launch_enabled()) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster > 1) {
    attributes[count].id = cudaLaunchAttributeClusterDimension;
    attributes[count].val.clusterDim.x = cluster;
    attributes[count].val.clusterDim.y = 1;
    attributes[count++].val.clusterDim.z = 1;
  }
  config.attrs = attributes;
  config.numAttrs = count;
  const cudaError_t e = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  return e != cudaSuccess ? e : cudaGetLastError();
}

// kernel<<<grid, block, shared, stream>>>(args...), chained where the device
// takes it; returns the launch's error.
template <typename... Params, typename... Args>
cudaError_t launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                           Args... args) {
  return launch_chained_clusters(kernel, grid, block, shared, stream, 1u, args...);
}

}  // namespace personaplex::cuda
