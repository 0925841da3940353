// Loads the model at start-up and keeps it loaded between calls: a
// personaplex element taken to PAUSED (the model loads and the default
// voice's prompts run, so a bad model or voice stops the server at once)
// and back to READY, where it holds the model but no conversation. Calls'
// elements name the same files, so they share that model.
#pragma once

#include <gst/gst.h>

#include <string>

#include "config.h"

namespace ppserver {

class ModelKeeper {
 public:
  ModelKeeper() = default;
  ~ModelKeeper();
  ModelKeeper(const ModelKeeper &) = delete;
  ModelKeeper &operator=(const ModelKeeper &) = delete;

  // Returns false with `error` set (the element's error message) on failure.
  bool load(const Config &config, std::string *error);

 private:
  GstElement *pipeline_ = nullptr;
};

}  // namespace ppserver
