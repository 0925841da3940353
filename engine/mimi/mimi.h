// Mimi, the streaming neural codec: 24 kHz mono PCM <-> 8 codebooks x 2048
// entries at 12.5 frames/s (one frame = 1920 samples = 80 ms).
//
// A Mimi holds immutable weights and is shared (std::shared_ptr<const Mimi>)
// by any number of streams; each stream owns a MimiState (conv left contexts,
// transposed-conv overlaps, KV caches). All sizes come from the config.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "mimi/config.h"

namespace personaplex::mimi {

struct MimiState;  // per-stream streaming state, defined in mimi/state.h

class Mimi {
 public:
  // Loads a Mimi from a safetensors file in the released layout. `config_path`
  // ("" = the released configuration) is a config.json in the fixtures'
  // format. Throws Error naming the file and tensor on any problem.
  static std::shared_ptr<const Mimi> load(const std::string &weights_path,
                                          const std::string &config_path,
                                          const at::Device &device, at::ScalarType dtype);
  ~Mimi();

  const MimiConfig &config() const;
  at::Device device() const;
  at::ScalarType dtype() const;
  int64_t frame_size() const;      // samples per frame (1920)
  int64_t sample_rate() const;     // 24000
  int64_t num_codebooks() const;   // codebooks produced/consumed (8)
  int64_t codebook_size() const;   // entries per codebook (2048)

  // Fresh streaming state for `batch` independent streams.
  std::unique_ptr<MimiState> new_state(int64_t batch = 1) const;
  // The same in rows mode: each row a stream that steps only when its row
  // is set in `state.active`, and restarts with reset_rows (a batch of
  // conversations that come and go; each row gives what a stream of its own
  // would, bit for bit up to the batched kernels' rounding).
  std::unique_ptr<MimiState> new_rows_state(int64_t batch) const;
  // Rows mode: the rows of `rows` start afresh, both directions.
  void reset_rows(MimiState &state, const std::vector<int64_t> &rows) const;

  // Streaming, one 80 ms frame per call.
  // pcm: float [B, 1, frame_size] (any device) -> int64 codes
  // [B, num_codebooks, 1] on the model's device.
  at::Tensor encode_frame(const at::Tensor &pcm, MimiState &state) const;
  // codes: int64 [B, num_codebooks, 1] -> float32 pcm [B, 1, frame_size] on the model's device.
  // Throws Error when a code is outside [0, codebook_size).
  at::Tensor decode_frame(const at::Tensor &codes, MimiState &state) const;

  // Non-streaming, whole signals (length a multiple of frame_size).
  at::Tensor encode(const at::Tensor &pcm) const;     // [B,1,N*frame] -> [B,K,N]
  at::Tensor decode(const at::Tensor &codes) const;   // [B,K,N] -> [B,1,N*frame]

  // Intermediate values, for checks against the reference.
  at::Tensor encode_to_latent(const at::Tensor &pcm) const;  // unquantized [B, D, N]
  at::Tensor dequantize(const at::Tensor &codes) const;      // [B, D, N]

 private:
  struct Impl;
  explicit Mimi(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex::mimi
