// The ring attention step (ring_attention.h) as a running softmax a warp,
// its keys and values loaded together. When a block per (row, head) would
// leave most of the GPU's SMs idle (batch 1: Mimi's 8 heads on 132 SMs,
// where each block stepped its 250 slots in four rounds, ~29 us), the slots
// of a (row, head) are split over the blocks of a cluster (compute 9.0+),
// whose softmax states merge in distributed shared memory: a head read by
// several SMs at once.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/ring_attention.h"

namespace personaplex::cuda {

// Launches on `stream` (capturable); returns the launch's error. The sizes
// as ring_attention_fits takes them.
cudaError_t ring_attention_clustered(const RingAttention &args, cudaStream_t stream);

}  // namespace personaplex::cuda
