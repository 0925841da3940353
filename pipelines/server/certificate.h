// The HTTPS certificate: DIR/cert.pem and DIR/key.pem, made self-signed
// (for `host`, localhost and 127.0.0.1) when DIR holds neither.
#pragma once

#include <gio/gio.h>

#include <string>

namespace ppserver {

// The certificate with its key, or nullptr with `error` set.
GTlsCertificate *load_or_create_certificate(const std::string &dir, const std::string &host, std::string *error);

}  // namespace ppserver
