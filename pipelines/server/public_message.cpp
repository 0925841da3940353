#include "public_message.h"

#include <glib.h>

namespace ppserver {
namespace {

// Characters that end a path inside a message ("file /a/b.pt: bad", "(/a/b)").
bool ends_path(char c) { return g_ascii_isspace(c) || c == '"' || c == '\'' || c == ',' || c == ';' || c == ')'; }

// "/srv/voices/NATF2.pt" -> "NATF2.pt", wherever an absolute path starts
// (at the start or after a space, quote or parenthesis).
std::string without_paths(const std::string &text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const bool starts = text[i] == '/' && (i == 0 || ends_path(text[i - 1]) || text[i - 1] == '(');
    if (!starts) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && !ends_path(text[end])) ++end;
    std::string path = text.substr(i, end - i);
    // A trailing colon belongs to the sentence ("/a/b.pt: not a voice").
    std::string tail;
    while (!path.empty() && (path.back() == ':' || path.back() == '.')) {
      tail.insert(tail.begin(), path.back());
      path.pop_back();
    }
    const size_t slash = path.find_last_of('/');
    out += path.substr(slash == std::string::npos ? 0 : slash + 1) + tail;
    i = end;
  }
  return out;
}

}  // namespace

std::string public_message(const std::string &text) {
  gchar *valid = g_utf8_make_valid(text.c_str(), gssize(text.size()));
  std::string out = without_paths(valid);
  g_free(valid);
  return out;
}

}  // namespace ppserver
