// Helpers shared by the mimienc and mimidec element tests: a tiny random
// Mimi written at start-up (no fixtures needed), the reference fixtures when
// present, harnesses around configured elements, and buffer readers.
#pragma once

#include "check_buffers.h"

// libtorch and the C++ library come before gstcheck.h, whose check.h macros
// (fail, ...) would break them; the tests include nothing after this file.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "io/safetensors.h"
#include "mimi/config.h"
#include "mimi/random_weights.h"

#include <gst/audio/audio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

namespace mimitest {

using checkutil::f32_buffer;
using checkutil::f32_of;
using checkutil::pop_message;
using checkutil::release_bus;
using checkutil::s16_buffer;

constexpr int kRate = 24000;
constexpr int kFrame = 1920;     // samples per frame of every test model
constexpr int kCodebooks = 8;
constexpr int kCodebookSize = 2048;
constexpr GstClockTime kFrameDuration = 80 * GST_MSECOND;

extern const char *const kPcmCapsF32;
extern const char *const kPcmCapsS16;
extern const char *const kMimiCaps;

struct ModelFiles {
  std::string weights;
  std::string config;
  std::string dtype;  // the elements' dtype property; empty: its default
};

// Writes the tiny random model into a scratch directory; call once from main()
// before the suite runs (forked tests inherit the paths).
void setup();
void teardown();
const ModelFiles &tiny_model();
const std::string &scratch_dir();

// The reference fixtures' Mimi, or null (and a note on stdout) when this
// checkout has no fixtures: the calling test then returns early.
const ModelFiles *fixture_model();
// The same with the elements' dtype set, or nothing (and the note).
std::optional<ModelFiles> fixture_model_in(const std::string &dtype);
// A tensor of the fixture io.safetensors, as float or int64 on the CPU.
at::Tensor fixture_tensor(const std::string &name, at::ScalarType dtype);

// A configured element (floating ref sunk), with `bus` attached when given;
// on the CPU unless PERSONAPLEX_TEST_DEVICE names another device.
GstElement *make_element(const char *factory, const ModelFiles &model, GstBus *bus = nullptr);
// A playing harness around `factory` with the model set.
GstHarness *harness(const char *factory, const ModelFiles &model, GstBus *bus = nullptr);

// Deterministic test audio: `n` samples of tones and noise in [-0.6, 0.6].
std::vector<float> test_signal(size_t n, unsigned seed = 1);

GstBuffer *codes_buffer(const std::vector<guint16> &codes, GstClockTime pts);

// Buffers pulled.
std::vector<guint16> codes_of(GstBuffer *buffer);

// Pushes `pcm` as F32LE frames of `chunk` samples with running timestamps.
void push_f32(GstHarness *h, const std::vector<float> &pcm, size_t chunk, size_t first_sample = 0);

// All buffers the harness holds now, unreffed after reading.
std::vector<std::vector<guint16>> pull_all_codes(GstHarness *h);
std::vector<float> pull_all_f32(GstHarness *h);

// Codes of `pcm` (F32LE pushed in buffers of `chunk` samples, then EOS).
std::vector<std::vector<guint16>> encode(const ModelFiles &model, const std::vector<float> &pcm,
                                         size_t chunk = kFrame);

// Pushes a flush, a fresh stream start and segment through `h`.
void flush_and_restart(GstHarness *h);



}  // namespace mimitest
