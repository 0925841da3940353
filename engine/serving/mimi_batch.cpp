#include "serving/mimi_batch.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "core/error.h"
#include "mimi/state.h"

namespace personaplex::serving {

MimiBatch::MimiBatch(std::shared_ptr<const mimi::Mimi> mimi, int64_t slots)
    : mimi_(std::move(mimi)), slots_(slots) {
  at::NoGradGuard no_grad;
  state_ = mimi_->new_rows_state(slots);
}

MimiBatch::~MimiBatch() = default;

void MimiBatch::restart(int64_t slot) {
  at::NoGradGuard no_grad;
  mimi_->reset_rows(*state_, {slot});
}

void MimiBatch::set_active(const std::vector<int64_t> &slots) {
  at::Tensor host = at::zeros({slots_}, at::kBool);
  bool *a = host.data_ptr<bool>();
  for (int64_t s : slots) {
    if (s < 0 || s >= slots_) throw Error("codec batch: slot " + std::to_string(s) + " is out of range");
    a[s] = true;
  }
  state_->active.copy_(host);
}

std::map<int64_t, std::vector<int64_t>> MimiBatch::encode(const std::map<int64_t, std::vector<float>> &pcm) {
  std::map<int64_t, std::vector<int64_t>> out;
  if (pcm.empty()) return out;
  at::NoGradGuard no_grad;
  const int64_t F = mimi_->frame_size(), K = mimi_->num_codebooks();
  at::Tensor frames = at::zeros({slots_, 1, F}, at::kFloat);
  std::vector<int64_t> active;
  for (const auto &[slot, samples] : pcm) {
    if (int64_t(samples.size()) != F)
      throw Error("codec batch: a frame holds " + std::to_string(F) + " samples, " +
                  std::to_string(samples.size()) + " given");
    active.push_back(slot);
    std::copy(samples.begin(), samples.end(), frames.data_ptr<float>() + slot * F);
  }
  set_active(active);
  at::Tensor codes = mimi_->encode_frame(frames, *state_).to(at::kCPU).contiguous();  // [B, K, 1]
  const int64_t *c = codes.data_ptr<int64_t>();
  for (int64_t slot : active) out[slot] = std::vector<int64_t>(c + slot * K, c + (slot + 1) * K);
  return out;
}

std::map<int64_t, std::vector<float>> MimiBatch::decode(const std::map<int64_t, std::vector<int64_t>> &codes) {
  std::map<int64_t, std::vector<float>> out;
  if (codes.empty()) return out;
  at::NoGradGuard no_grad;
  const int64_t F = mimi_->frame_size(), K = mimi_->num_codebooks();
  at::Tensor host = at::zeros({slots_, K, 1}, at::kLong);
  std::vector<int64_t> active;
  for (const auto &[slot, c] : codes) {
    if (int64_t(c.size()) != K)
      throw Error("codec batch: a frame holds " + std::to_string(K) + " codes, " + std::to_string(c.size()) +
                  " given");
    active.push_back(slot);
    std::copy(c.begin(), c.end(), host.data_ptr<int64_t>() + slot * K);
  }
  set_active(active);
  at::Tensor pcm = mimi_->decode_frame(host.to(mimi_->device()), *state_).to(at::kCPU).contiguous();
  const float *p = pcm.data_ptr<float>();
  for (int64_t slot : active) out[slot] = std::vector<float>(p + slot * F, p + (slot + 1) * F);
  return out;
}

}  // namespace personaplex::serving
