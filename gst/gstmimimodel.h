// What mimienc and mimidec share: the properties that name a Mimi model
// (weights, config, device, dtype) and loading it through the process-wide cache, so
// all elements of a process that name the same files share one model.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "mimi/mimi.h"
#include "mimi/state.h"

namespace gstpersonaplex {

// Property ids; an element's own properties start at MIMI_MODEL_PROP_LAST.
enum : guint {
  MIMI_MODEL_PROP_WEIGHTS = 1,
  MIMI_MODEL_PROP_CONFIG,
  MIMI_MODEL_PROP_DEVICE,
  MIMI_MODEL_PROP_DTYPE,
  MIMI_MODEL_PROP_LAST,
};

// "auto": the first GPU when this build and machine have one, else the CPU.
#define GST_PERSONAPLEX_DEFAULT_DEVICE "auto"

// Guarded by the element's object lock; copy it out before use.
struct MimiModelSettings {
  std::string weights;
  std::string config;
  std::string device = GST_PERSONAPLEX_DEFAULT_DEVICE;
  std::string dtype = "auto";  // a GstPersonaPlexDtype nick; auto: float32
};

void mimi_model_install_properties(GObjectClass *klass);

// The elements' GObject property handlers (they have no others): a
// warning for an id that is not one of the model properties.
void mimi_model_set_property(GObject *object, MimiModelSettings *settings, guint prop_id,
                             const GValue *value, GParamSpec *pspec);
void mimi_model_get_property(GObject *object, const MimiModelSettings *settings, guint prop_id,
                             GValue *value, GParamSpec *pspec);

// A copy taken under the object lock.
MimiModelSettings mimi_model_settings_copy(GstElement *element,
                                           const MimiModelSettings *settings);

// The model the settings name, loaded or shared; on failure posts an error
// message on `element` (naming the file and the problem) and returns null.
std::shared_ptr<const personaplex::mimi::Mimi> mimi_model_acquire(
    GstElement *element, const MimiModelSettings &settings);

// start(): the model the settings name (a copy taken under the object lock)
// and a fresh codec stream of one; on failure posts the error on `element`
// and returns false, leaving *model and *state as they were.
bool mimi_model_open_stream(GstElement *element, const MimiModelSettings *settings,
                            std::shared_ptr<const personaplex::mimi::Mimi> *model,
                            std::unique_ptr<personaplex::mimi::MimiState> *state);

// The pad template caps of Mimi frames (the model fixes the ranges).
#define GST_MIMI_TEMPLATE_CAPS                                                    \
  "audio/x-mimi, rate = (int) 24000, channels = (int) 1, "                        \
  "frame-duration-us = (int) 80000, codebooks = (int) [ 1, 32 ], "                \
  "codebook-size = (int) [ 1, 65536 ]"

// The caps of Mimi frames from `model`: audio/x-mimi with rate, channels,
// frame-duration-us, codebooks and codebook-size.
GstCaps *mimi_model_codec_caps(const personaplex::mimi::Mimi &model);

}  // namespace gstpersonaplex
