// Everything one Mimi stream remembers between frames: the SEANet convs' left
// contexts and transposed-conv overlaps, the latent resamplers' contexts and
// both transformers' KV caches. Sized for `batch` independent streams.
#pragma once

#include <ATen/ATen.h>

#include "mimi/conv.h"
#include "mimi/seanet.h"
#include "nn/transformer.h"

namespace personaplex::mimi {

struct MimiState {
  int64_t batch = 1;

  // encode_frame
  SeanetState encoder;
  nn::TransformerState encoder_transformer;
  ConvState downsample;

  // decode_frame
  ConvTrState upsample;
  nn::TransformerState decoder_transformer;
  SeanetState decoder;

  // Back to a fresh stream (the same as a new state, without reallocating).
  void reset_encoder() {
    encoder.reset();
    encoder_transformer.reset();
    downsample.reset();
  }
  void reset_decoder() {
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
