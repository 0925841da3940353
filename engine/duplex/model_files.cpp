#include "duplex/model_files.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "core/error.h"

namespace personaplex::duplex {
namespace {

enum class Kind { kFile, kDirectory };

bool exists_as(const std::string &path, Kind kind) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return false;
  return kind == Kind::kFile ? S_ISREG(st.st_mode) : S_ISDIR(st.st_mode);
}

std::string join(const std::string &dir, const char *name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

// A required file: the override, else the directory's released name.
std::string required(const std::string &given, const std::string &dir, const char *name,
                     const char *role) {
  if (given.empty() && dir.empty())
    throw Error(std::string("no ") + role + " file given (neither the file nor a model directory)");
  const std::string path = given.empty() ? join(dir, name) : given;
  if (!exists_as(path, Kind::kFile))
    throw Error(std::string(role) + " file \"" + path + "\" not found" +
                (given.empty() ? " in the model directory" : ""));
  return path;
}

// An optional file or directory: the override (which must exist), else the
// directory's entry when present, else "".
std::string optional(const std::string &given, const std::string &dir, const char *name,
                     const char *role, Kind kind) {
  if (!given.empty()) {
    if (!exists_as(given, kind))
      throw Error(std::string(role) + " \"" + given + "\" not found" +
                  (kind == Kind::kDirectory ? " (or not a directory)" : ""));
    return given;
  }
  if (dir.empty()) return "";
  const std::string path = join(dir, name);
  return exists_as(path, kind) ? path : "";
}

}  // namespace

ModelFiles resolve_model_files(const ModelPaths &p) {
  if (!p.model_dir.empty() && !exists_as(p.model_dir, Kind::kDirectory))
    throw Error("model directory \"" + p.model_dir + "\" not found (or not a directory)");
  ModelFiles f;
  f.lm_weights = required(p.lm_weights, p.model_dir, kLmWeightsName, "LM weights");
  f.lm_config = optional(p.lm_config, p.model_dir, kLmConfigName, "LM config file", Kind::kFile);
  f.mimi_weights = required(p.mimi_weights, p.model_dir, kMimiWeightsName, "Mimi weights");
  f.mimi_config = optional(p.mimi_config, p.model_dir, kMimiConfigName, "Mimi config file", Kind::kFile);
  f.tokenizer = required(p.tokenizer, p.model_dir, kTokenizerName, "text tokenizer");
  f.voices_dir = optional(p.voices_dir, p.model_dir, kVoicesDirName, "voices directory", Kind::kDirectory);
  return f;
}

std::string file_identity(const std::string &path) {
  if (path.empty()) return "";
  char resolved[PATH_MAX];
  std::string id = realpath(path.c_str(), resolved) ? resolved : path;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0)
    id += ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
          std::to_string(st.st_mtim.tv_nsec);
  return id;
}

}  // namespace personaplex::duplex
