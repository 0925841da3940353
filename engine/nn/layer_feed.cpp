#include "nn/layer_feed.h"

#include <string>

#include "core/error.h"

namespace personaplex::nn {
namespace {

std::vector<LinearWeight *> linears(LayerWeights &l) { return {&l.in_proj, &l.out_proj, &l.mlp_in, &l.mlp_out}; }

}  // namespace

LayerFeed::LayerFeed(const TransformerWeights &weights, const at::Device &device)
    : w_(weights), upload_(device) {
  start_from(0);
}

LayerFeed::~LayerFeed() {
  for (const auto &s : staged_) upload_.wait(s.ticket);
}

void LayerFeed::start_from(size_t from) {
  size_t i = from;
  while (i < w_.layers.size() && !w_.layers[i].host) ++i;
  if (i == w_.layers.size()) return;
  Staged s;
  s.layer = i;
  s.weights = w_.layers[i];
  std::vector<at::Tensor> host, copies;
  for (LinearWeight *l : linears(s.weights)) {
    host.push_back(l->weight);
    if (l->scale.defined()) host.push_back(l->scale);
  }
  s.ticket = upload_.start(host, copies);
  size_t k = 0;
  for (LinearWeight *l : linears(s.weights)) {
    l->weight = copies[k++];
    if (l->scale.defined()) l->scale = copies[k++];
  }
  staged_.push_back(std::move(s));
}

const LayerWeights &LayerFeed::operator[](size_t i) {
  if (i >= w_.layers.size()) throw Error("LayerFeed: no layer " + std::to_string(i));
  if (!w_.layers[i].host) return w_.layers[i];
  // Layers before i are done with: their uploads can go (their memory is
  // reused after the current stream's work so far, see HostUpload).
  while (!staged_.empty() && staged_.front().layer < i) staged_.erase(staged_.begin());
  if (staged_.empty() || staged_.front().layer != i)
    throw Error("LayerFeed: layer " + std::to_string(i) + " asked for out of order");
  if (staged_.size() == 1) start_from(i + 1);  // the next one, while this one runs
  upload_.wait(staged_.front().ticket);
  return staged_.front().weights;
}

}  // namespace personaplex::nn
