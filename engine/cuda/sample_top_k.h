// Top-k sampling of each row in one launch, on CUDA: softmax of logits /
// temperature, the k most probable tokens in token order, and the
// exponential race argmax(p[i] / noise[i]) with the caller's draws.
// libtorch takes about ten launches for it (a division, a softmax, a top-k by
// radix sort and a gather, another division, an argmax, a gather), which at
// batch 1 cost more than the products of a depth-transformer step.
//
// The k tokens are found by a radix select over the logits (the order of
// logits is the order of probabilities), so nothing is sorted; each
// candidate's place in token order is counted among the k. Among equal
// logits at the k-th place the lower tokens are taken (libtorch leaves
// which unspecified).
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

// The most candidates the kernel ranks (its shared memory); a race over the
// whole vocabulary takes any size.
constexpr int kMaxTopK = 4096;

struct TopKSample {
  const float *logits = nullptr;  // [rows, vocab], contiguous
  const float *noise = nullptr;   // [rows, race]: Exp(1) draws, race = k < vocab ? k : vocab
  int64_t *out = nullptr;         // [rows]: the token drawn
  int64_t rows = 0;
  int vocab = 0;
  int k = 0;  // k <= 0 or k >= vocab: the whole vocabulary races
  float temperature = 1.0f;
};

// Whether sample_top_k takes this vocabulary and k.
bool sample_top_k_fits(int64_t vocab, int64_t k);

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t sample_top_k(const TopKSample &args, cudaStream_t stream);

}  // namespace personaplex::cuda
