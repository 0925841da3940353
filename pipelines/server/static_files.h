// A directory tree served at `/` (--static DIR), the way the reference
// server hosts its web client: `/` and every directory give their
// index.html, every file below DIR goes out with its MIME type (`.wasm` as
// application/wasm, so browsers stream-compile it), with ETag and
// Last-Modified for conditional GETs. Nothing outside DIR is reachable:
// `..` (plain or percent-encoded), hidden names, and symbolic links that
// lead out are refused.
#pragma once

#include <libsoup/soup.h>

#include <string>

namespace ppserver {

class StaticFiles {
 public:
  // `root` must be a directory; error() otherwise.
  explicit StaticFiles(const std::string &root);

  bool ok() const { return error_.empty(); }
  const std::string &error() const { return error_; }

  // Answers a GET or HEAD of `path` (the request's path, still encoded).
  void serve(SoupServerMessage *msg, const char *path) const;

  // The MIME type of a file name.
  static const char *content_type(const std::string &name);

 private:
  std::string root_;  // resolved: no symbolic links
  std::string error_;
};

}  // namespace ppserver
