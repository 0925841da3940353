#include "lm/token_ring.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace personaplex::lm {

TokenRing::TokenRing(const LmConfig &config)
    : config_(config), rows_(config.num_streams()), cols_(config.ring_size()) {
  reset();
}

void TokenRing::reset() {
  cells_.assign(size_t(rows_ * cols_), kUngenerated);
  given_.assign(size_t(rows_ * cols_), 0);
  offset_ = 0;
}

void TokenRing::assign(const TokenRing &other) {
  if (other.rows_ != rows_ || other.cols_ != cols_) throw Error("token ring: assigned a ring of another shape");
  cells_ = other.cells_;
  given_ = other.given_;
  offset_ = other.offset_;
}

void TokenRing::set(int64_t row, int64_t col, int64_t value) {
  cells_[idx(row, col)] = value;
  given_[idx(row, col)] = 1;
}

std::optional<TokenRing::Columns> TokenRing::prepare(const StepTokens &in) {
  const auto &delays = config_.delays;
  auto write = [&](int64_t row, int64_t value) { set(row, (offset_ + delays[row]) % cols_, value); };
  for (size_t q = 0; q < in.user.size(); ++q) write(1 + kAudioCodebooks + int64_t(q), in.user[q]);
  for (size_t q = 0; q < in.agent.size(); ++q) write(1 + int64_t(q), in.agent[q]);
  if (in.text) write(0, *in.text);
  auto initial = [&](int64_t row) { return row == 0 ? config_.text_card : config_.card; };
  for (int64_t row = 0; row < rows_; ++row)
    if (offset_ <= delays[row]) set(row, offset_ % cols_, initial(row));
  if (offset_ == 0) {
    for (int64_t row = 0; row < rows_; ++row) cells_[idx(row, 0)] = initial(row);
    offset_ = 1;
    return std::nullopt;
  }
  return Columns{(offset_ - 1) % cols_, offset_ % cols_};
}

std::optional<std::vector<int64_t>> TokenRing::finish(const Columns &cols,
                                                      std::optional<int64_t> text,
                                                      const std::vector<int64_t> &audio) {
  for (int64_t row = 0; row < rows_; ++row) given_[idx(row, cols.input)] = 0;
  const int64_t t = cols.target;
  if (text && !given(0, t)) cells_[idx(0, t)] = *text;
  for (size_t k = 0; k < audio.size(); ++k)
    if (!given(1 + int64_t(k), t)) cells_[idx(1 + int64_t(k), t)] = audio[k];
  const int64_t max_delay = config_.max_delay();
  if (offset_ <= max_delay) {
    ++offset_;
    return std::nullopt;
  }
  std::vector<int64_t> out(size_t(config_.dep_q + 1));
  for (int64_t row = 0; row <= config_.dep_q; ++row)
    out[size_t(row)] = get(row, (offset_ - max_delay + config_.delays[row]) % cols_);
  ++offset_;
  return out;
}

std::vector<int64_t> TokenRing::column(int64_t col) const {
  std::vector<int64_t> c(static_cast<size_t>(rows_));
  for (int64_t row = 0; row < rows_; ++row) c[size_t(row)] = get(row, col);
  return c;
}

at::Tensor TokenRing::to_tensor() const {
  return at::tensor(cells_, at::kLong).view({1, rows_, cols_});
}

void TokenRing::load(const at::Tensor &cells) {
  const std::vector<int64_t> want = {1, rows_, cols_};
  if (cells.sizes().vec() != want)
    throw Error("token ring of shape " + shape_string(cells.sizes()) + ", expected " +
                shape_string(want));
  at::Tensor c = cells.to(at::kCPU, at::kLong).contiguous();
  std::copy(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel(), cells_.begin());
}

}  // namespace personaplex::lm
