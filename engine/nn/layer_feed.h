// A transformer's layers in order, each with its weights on the compute
// device when it runs. A layer kept in host memory (LayerWeights::host) is
// uploaded on a side stream while the layers before it run, one layer ahead,
// so the device holds at most two such layers' weights at once. Made per
// step and used from one thread; capturable in a CUDA graph.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <vector>

#include "core/host_upload.h"
#include "nn/transformer.h"

namespace personaplex::nn {

class LayerFeed {
 public:
  // Starts uploading the first host layer, if any.
  LayerFeed(const TransformerWeights &weights, const at::Device &device);
  // The current stream waits for any upload not waited for (a graph capture
  // must join the side stream back).
  ~LayerFeed();
  LayerFeed(const LayerFeed &) = delete;
  LayerFeed &operator=(const LayerFeed &) = delete;

  size_t size() const { return w_.layers.size(); }
  // Layer i on the device; call for i = 0, 1, ... in order. What it returns
  // stays valid until the next call.
  const LayerWeights &operator[](size_t i);

 private:
  struct Staged {
    size_t layer = 0;
    size_t ticket = 0;
    LayerWeights weights;
  };
  // Starts the upload of the first host layer from `from` on, if any.
  void start_from(size_t from);

  const TransformerWeights &w_;
  HostUpload upload_;
  std::vector<Staged> staged_;  // started, oldest first: at most two
};

}  // namespace personaplex::nn
