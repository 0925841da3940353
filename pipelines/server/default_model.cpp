#include "default_model.h"

#include <glib.h>

#include <vector>

namespace ppserver {
namespace {

constexpr const char *kReleasedDir = "personaplex-7b-v1";
constexpr const char *kMakeModel = "personaplex-make-model";

std::string take(gchar *s) {
  std::string out = s ? s : "";
  g_free(s);
  return out;
}

bool executable(const std::string &path) { return g_file_test(path.c_str(), G_FILE_TEST_IS_EXECUTABLE); }

// personaplex-make-model: in $PERSONAPLEX_TOOLS, beside this program (both
// installed), in this build's tools, or on PATH; "" when nowhere.
std::string make_model_program() {
  std::vector<std::string> dirs;
  if (const char *tools = g_getenv("PERSONAPLEX_TOOLS")) dirs.push_back(tools);
  const std::string self = take(g_file_read_link("/proc/self/exe", nullptr));
  if (!self.empty()) dirs.push_back(take(g_path_get_dirname(self.c_str())));
#ifdef PERSONAPLEX_BUILD_TOOLS_DIR
  dirs.push_back(PERSONAPLEX_BUILD_TOOLS_DIR);
#endif
  for (const std::string &dir : dirs) {
    const std::string path = take(g_build_filename(dir.c_str(), kMakeModel, nullptr));
    if (executable(path)) return path;
  }
  return take(g_find_program_in_path(kMakeModel));
}

}  // namespace

std::string default_model_dir(std::string *error) {
  if (g_file_test(kReleasedDir, G_FILE_TEST_IS_DIR)) return kReleasedDir;
  const std::string program = make_model_program();
  if (program.empty()) {
    *error = std::string("no model given, no ") + kReleasedDir + "/ here, and no " + kMakeModel +
             " to make the demo model: give --model-dir DIR";
    return "";
  }
  gchar *argv[] = {const_cast<gchar *>(program.c_str()), const_cast<gchar *>("--demo"), nullptr};
  gchar *out = nullptr;
  gint status = 0;
  GError *spawn_error = nullptr;
  // Its messages go to our stderr; stdout is the directory.
  if (!g_spawn_sync(nullptr, argv, nullptr, G_SPAWN_DEFAULT, nullptr, nullptr, &out, nullptr, &status,
                    &spawn_error) ||
      !g_spawn_check_wait_status(status, &spawn_error)) {
    *error = "the demo model could not be made: " + std::string(spawn_error->message);
    g_error_free(spawn_error);
    g_free(out);
    return "";
  }
  std::string dir = take(g_strstrip(out));
  g_print("No model given: using the demo model in %s.\n"
          "  It has random weights, so it speaks noise. For the real model, accept the license on\n"
          "  https://huggingface.co/nvidia/personaplex-7b-v1, then run\n"
          "  HF_TOKEN=hf_... pipelines/fetch-model.sh\n"
          "  which puts it in ./%s, used from then on.\n",
          dir.c_str(), kReleasedDir);
  return dir;
}

}  // namespace ppserver
