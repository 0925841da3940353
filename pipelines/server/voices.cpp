#include "voices.h"

#include <glib.h>

#include <algorithm>

namespace ppserver {
namespace {

bool is_voice_file_name(const std::string &name) {
  return g_str_has_suffix(name.c_str(), ".pt") || g_str_has_suffix(name.c_str(), ".wav");
}

bool is_regular_file(const std::string &dir, const std::string &name) {
  gchar *path = g_build_filename(dir.c_str(), name.c_str(), nullptr);
  const bool ok = g_file_test(path, G_FILE_TEST_IS_REGULAR);
  g_free(path);
  return ok;
}

// No separators, no hidden or parent names, nothing a shell or URL would
// read twice: what stays a file of the directory.
bool is_plain_name(const std::string &name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (const char c : name)
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
  return g_utf8_validate(name.c_str(), name.size(), nullptr);
}

}  // namespace

std::vector<std::string> list_voices(const std::string &dir) {
  std::vector<std::string> names;
  GDir *d = dir.empty() ? nullptr : g_dir_open(dir.c_str(), 0, nullptr);
  if (!d) return names;
  while (const gchar *entry = g_dir_read_name(d)) {
    const std::string name = entry;
    if (is_plain_name(name) && is_voice_file_name(name) && is_regular_file(dir, name)) names.push_back(name);
  }
  g_dir_close(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string find_voice(const std::string &dir, const std::string &name, std::string *error) {
  if (!is_plain_name(name)) {
    *error = "voice \"" + name + "\" is not a voice name (a file name of the voices directory)";
    return "";
  }
  if (dir.empty()) {
    *error = "this server has no voices directory";
    return "";
  }
  const std::vector<std::string> candidates =
      is_voice_file_name(name) ? std::vector<std::string>{name}
                               : std::vector<std::string>{name + ".pt", name + ".wav"};
  for (const std::string &c : candidates)
    if (is_regular_file(dir, c)) return c;
  *error = "unknown voice \"" + name + "\"";
  return "";
}

std::string default_voice(const std::string &dir) {
  const std::vector<std::string> voices = list_voices(dir);
  for (const std::string &v : voices)
    if (v == "NATF2.pt" || v == "NATF2.wav") return v;
  return voices.empty() ? "" : voices.front();
}

}  // namespace ppserver
