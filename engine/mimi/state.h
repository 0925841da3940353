// Everything one Mimi stream remembers between frames: the SEANet convs' left
// contexts and transposed-conv overlaps, the latent resamplers' contexts and
// both transformers' KV caches. Sized for `batch` independent streams.
#pragma once

#include <ATen/ATen.h>

#include <memory>

#include "mimi/conv.h"
#include "mimi/seanet.h"
#include "mimi/step_graph.h"
#include "nn/transformer.h"

namespace personaplex::mimi {

struct MimiState {
  int64_t batch = 1;
  // Rows mode (Mimi::new_rows_state): each of the `batch` rows is a stream
  // of its own; a frame step advances only the rows set in `active` (bool
  // [batch] on the device: set it before each step), and Mimi::reset_rows
  // restarts rows. Otherwise undefined: all rows step together.
  at::Tensor active;

  // On CUDA, each direction's frame step is replayed as a CUDA graph after
  // a first direct call (null: not used). Dropped by a reset.
  std::shared_ptr<StepGraph> encode_graph, decode_graph;

  // encode_frame
  SeanetState encoder;
  nn::TransformerState encoder_transformer;
  ConvState downsample;

  // decode_frame
  ConvTrState upsample;
  nn::TransformerState decoder_transformer;
  SeanetState decoder;

  // Back to a fresh stream (the same as a new state, without reallocating).
  // Not for rows mode (see Mimi::reset_rows).
  void reset_encoder() {
    if (encode_graph) encode_graph = std::make_shared<StepGraph>(encoder_transformer.step.device());
    encoder.reset();
    encoder_transformer.reset();
    downsample.reset();
  }
  void reset_decoder() {
    if (decode_graph) decode_graph = std::make_shared<StepGraph>(decoder_transformer.step.device());
    upsample.reset();
    decoder_transformer.reset();
    decoder.reset();
  }
  void reset() {
    reset_encoder();
    reset_decoder();
  }
};

}  // namespace personaplex::mimi
