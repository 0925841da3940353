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

// kernel<<<grid, block, shared, stream>>>(args...), chained where the device
// takes it; returns the launch's error.
template <typename... Params, typename... Args>
cudaError_t launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                           Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute chained[1] = {};
  chained[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  chained[0].val.programmaticStreamSerializationAllowed = 1;
  if (chained_launch_enabled()) {
    config.attrs = chained;
    config.numAttrs = 1;
  }
  const cudaError_t e = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  return e != cudaSuccess ? e : cudaGetLastError();
}

}  // namespace personaplex::cuda
