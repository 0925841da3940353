#include "duplex/voice_resolver.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include "core/error.h"

namespace personaplex::duplex {
namespace {

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_voice_file_name(const std::string &name) {
  return ends_with(name, ".pt") || ends_with(name, ".wav");
}

bool is_regular_file(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A plain name stays inside the directory: no separator, not "." or "..".
bool is_plain_name(const std::string &name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

std::string listing(const std::string &voices_dir) {
  std::string out;
  for (const std::string &name : available_voices(voices_dir)) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

}  // namespace

std::vector<std::string> available_voices(const std::string &voices_dir) {
  std::vector<std::string> names;
  DIR *dir = voices_dir.empty() ? nullptr : opendir(voices_dir.c_str());
  if (!dir) return names;
  while (const dirent *entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (is_voice_file_name(name) && is_regular_file(voices_dir + "/" + name)) names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::string default_voice(const std::string &voices_dir) {
  const std::vector<std::string> names = available_voices(voices_dir);
  for (const char *name : {"NATF2.pt", "NATF2.wav"})
    if (std::find(names.begin(), names.end(), name) != names.end()) return name;
  return names.size() == 1 ? names[0] : "";
}

std::string resolve_voice(const std::string &voice, const std::string &voices_dir) {
  if (voice.empty()) return "";
  if (is_voice_file_name(voice) && voice.find('/') != std::string::npos && is_regular_file(voice))
    return voice;
  if (!is_plain_name(voice))
    throw Error("voice \"" + voice + "\" is neither an existing .pt or .wav file nor a voice name "
                "(a name cannot contain '/' or be \".\" or \"..\")");
  if (voices_dir.empty())
    throw Error("voice \"" + voice + "\" is a name, but no voices directory is set to look it up in");
  const std::vector<std::string> candidates =
      is_voice_file_name(voice) ? std::vector<std::string>{voice}
                                : std::vector<std::string>{voice + ".pt", voice + ".wav"};
  for (const std::string &name : candidates)
    if (is_regular_file(voices_dir + "/" + name)) return voices_dir + "/" + name;
  throw Error("unknown voice \"" + voice + "\" in \"" + voices_dir + "\"; available: " + listing(voices_dir));
}

}  // namespace personaplex::duplex
