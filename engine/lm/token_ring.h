// The token ring of a conversation: num_streams rows (text, agent audio,
// user audio) by max_delay + 3 columns, with a "provided" flag per cell,
// following the reference generator step for step:
//
// - a step's given tokens are written at column (offset + delay[row]);
// - while offset <= delay[row], column offset of that row gets the initial
//   token (text_card for text, card for audio);
// - the very first step (offset 0) only does that and runs no model;
// - otherwise the model reads column offset-1 and predicts column offset,
//   where given tokens take precedence over predicted ones;
// - from offset max_delay + 1 on, a step returns column offset-max_delay+delay[row]
//   for rows 0..dep_q, i.e. [text(o-1), agent cb0(o-1), agent cb1..(o), ...].
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "lm/config.h"

namespace personaplex::lm {

// Unwritten cells (the reference's "ungenerated" id).
constexpr int64_t kUngenerated = -2;

// The tokens given to one step; an empty vector (or nullopt) is not given.
struct StepTokens {
  std::optional<int64_t> text;
  std::vector<int64_t> agent;  // kAudioCodebooks values
  std::vector<int64_t> user;   // n_q - kAudioCodebooks values
};

class TokenRing {
 public:
  explicit TokenRing(const LmConfig &config);

  struct Columns {
    int64_t input;   // the column the model reads
    int64_t target;  // the column it predicts
  };
  // Records the given tokens; nullopt when this step runs no model (offset 0),
  // in which case the offset has already advanced.
  std::optional<Columns> prepare(const StepTokens &in);
  // After the model ran: writes the sampled tokens where nothing was given
  // (text: one value; audio: dep_q values, or fewer when fewer were sampled),
  // clears the read column's flags. Returns the step's output (rows
  // 0..dep_q) once offset > max_delay, and advances the offset.
  std::optional<std::vector<int64_t>> finish(const Columns &cols, std::optional<int64_t> text,
                                             const std::vector<int64_t> &audio);

  int64_t get(int64_t row, int64_t col) const { return cells_[idx(row, col)]; }
  bool given(int64_t row, int64_t col) const { return given_[idx(row, col)]; }
  std::vector<int64_t> column(int64_t col) const;
  int64_t offset() const { return offset_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

  // The cells as int64 [1, rows, cols] (the reference's `cache`), and back.
  at::Tensor to_tensor() const;
  void load(const at::Tensor &cells);  // throws Error on a wrong shape
  void reset();
  // Takes another ring's cells, flags and offset (a ring of the same config).
  void assign(const TokenRing &other);

 private:
  size_t idx(int64_t row, int64_t col) const { return size_t(row * cols_ + col); }
  void set(int64_t row, int64_t col, int64_t value);

  const LmConfig &config_;
  int64_t rows_, cols_;
  std::vector<int64_t> cells_;
  std::vector<uint8_t> given_;
  int64_t offset_ = 0;
};

}  // namespace personaplex::lm
