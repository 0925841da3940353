#include "static_files.h"

#include <glib/gstdio.h>

#include <climits>
#include <cstdlib>
#include <map>

namespace ppserver {
namespace {

void plain(SoupServerMessage *msg, guint status, const char *text) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_COPY, text, strlen(text));
}

// The request path as file name segments; false when it names anything
// outside the tree (`..`, an encoded `/`, a NUL) or a hidden name.
bool segments_of(const char *path, std::string *relative) {
  gchar **parts = g_strsplit(path, "/", -1);
  bool ok = true;
  for (gchar **p = parts; ok && *p; ++p) {
    if (**p == '\0') continue;
    gchar *name = g_uri_unescape_string(*p, "/");  // NULL on %00 or a bad escape; "/" stays refused
    ok = name && name[0] != '.' && !strchr(name, '\\') && g_utf8_validate(name, -1, nullptr);
    if (ok) *relative += std::string("/") + name;
    g_free(name);
  }
  g_strfreev(parts);
  return ok;
}

std::string real_path(const std::string &path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) ? resolved : "";
}

bool inside(const std::string &path, const std::string &root) {
  return path == root || (path.compare(0, root.size(), root) == 0 && path[root.size()] == '/');
}

}  // namespace

const char *StaticFiles::content_type(const std::string &name) {
  static const std::map<std::string, const char *> types = {
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"}, {".json", "application/json"}, {".map", "application/json"},
      {".webmanifest", "application/manifest+json"}, {".wasm", "application/wasm"},
      {".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
      {".gif", "image/gif"}, {".webp", "image/webp"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
      {".woff", "font/woff"}, {".woff2", "font/woff2"}, {".ttf", "font/ttf"}, {".otf", "font/otf"},
      {".wav", "audio/wav"}, {".mp3", "audio/mpeg"}, {".ogg", "audio/ogg"}, {".opus", "audio/ogg"},
      {".webm", "video/webm"}, {".mp4", "video/mp4"}, {".xml", "application/xml"}, {".pdf", "application/pdf"},
  };
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || name.find('/', dot) != std::string::npos) return "application/octet-stream";
  gchar *ext = g_ascii_strdown(name.c_str() + dot, -1);
  auto it = types.find(ext);
  g_free(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

StaticFiles::StaticFiles(const std::string &root) {
  root_ = real_path(root);
  if (root_.empty() || !g_file_test(root_.c_str(), G_FILE_TEST_IS_DIR))
    error_ = "--static: \"" + root + "\" is not a directory";
}

void StaticFiles::serve(SoupServerMessage *msg, const char *path) const {
  std::string relative;
  if (!segments_of(path, &relative)) return plain(msg, SOUP_STATUS_NOT_FOUND, "not found\n");
  std::string file = real_path(root_ + relative);
  if (file.empty()) return plain(msg, SOUP_STATUS_NOT_FOUND, "not found\n");
  if (!inside(file, root_)) return plain(msg, SOUP_STATUS_FORBIDDEN, "outside the served directory\n");
  if (g_file_test(file.c_str(), G_FILE_TEST_IS_DIR)) {
    const std::string request = path;
    if (request.empty() || request.back() != '/') {  // relative links in the page need the slash
      soup_server_message_set_redirect(msg, SOUP_STATUS_MOVED_PERMANENTLY, (request + "/").c_str());
      return;
    }
    file = real_path(file + "/index.html");
    if (file.empty()) return plain(msg, SOUP_STATUS_NOT_FOUND, "not found\n");
    if (!inside(file, root_)) return plain(msg, SOUP_STATUS_FORBIDDEN, "outside the served directory\n");
  }
  GStatBuf st;
  if (g_stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return plain(msg, SOUP_STATUS_NOT_FOUND, "not found\n");

  SoupMessageHeaders *out = soup_server_message_get_response_headers(msg);
  SoupMessageHeaders *in = soup_server_message_get_request_headers(msg);
  gchar *etag = g_strdup_printf("\"%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x\"", gint64(st.st_mtime),
                                gint64(st.st_size));
  GDateTime *modified = g_date_time_new_from_unix_utc(st.st_mtime);
  gchar *last_modified = soup_date_time_to_string(modified, SOUP_DATE_HTTP);
  soup_message_headers_replace(out, "ETag", etag);
  soup_message_headers_replace(out, "Last-Modified", last_modified);
  soup_message_headers_replace(out, "Cache-Control", "no-cache");  // revalidated: a rebuild changes files
  soup_message_headers_replace(out, "X-Content-Type-Options", "nosniff");
  // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
  const char *none_match = soup_message_headers_get_one(in, "If-None-Match");
  const char *since = soup_message_headers_get_one(in, "If-Modified-Since");
  bool fresh = false;
  if (none_match) {
    fresh = strstr(none_match, etag) != nullptr || strchr(none_match, '*') != nullptr;
  } else if (since) {
    GDateTime *t = soup_date_time_new_from_http_string(since);
    fresh = t && g_date_time_to_unix(t) >= gint64(st.st_mtime);
    if (t) g_date_time_unref(t);
  }
  g_free(etag);
  g_free(last_modified);
  g_date_time_unref(modified);
  if (fresh) {
    soup_server_message_set_status(msg, SOUP_STATUS_NOT_MODIFIED, nullptr);
    return;
  }
  GMappedFile *mapped = g_mapped_file_new(file.c_str(), FALSE, nullptr);
  if (!mapped) return plain(msg, SOUP_STATUS_FORBIDDEN, "cannot read the file\n");
  GBytes *bytes = g_mapped_file_get_bytes(mapped);
  g_mapped_file_unref(mapped);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_message_headers_replace(out, "Content-Type", content_type(file));
  soup_message_body_append_bytes(soup_server_message_get_response_body(msg), bytes);
  g_bytes_unref(bytes);
}

}  // namespace ppserver
