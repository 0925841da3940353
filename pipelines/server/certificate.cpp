#include "certificate.h"

#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <ctime>

namespace ppserver {
namespace {

constexpr int kValidDays = 365;

struct Pem {
  std::string cert, key;
};

bool check(int rc, const char *what, std::string *error) {
  if (rc >= 0) return true;
  *error = std::string(what) + ": " + gnutls_strerror(rc);
  return false;
}

// The datum as a string ("" when the export failed); frees it.
std::string take_datum(int rc, gnutls_datum_t *d) {
  std::string s = rc < 0 ? "" : std::string(reinterpret_cast<const char *>(d->data), d->size);
  gnutls_free(d->data);
  return s;
}

// An ECDSA P-256 key and a self-signed server certificate naming `host`.
bool make_self_signed(const std::string &host, Pem *pem, std::string *error) {
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  bool ok = check(gnutls_x509_privkey_init(&key), "key", error) &&
            check(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                               GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                  "key generation", error) &&
            check(gnutls_x509_crt_init(&crt), "certificate", error);
  if (ok) {
    unsigned char serial[16];
    gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
    serial[0] &= 0x7f;  // a positive number
    const time_t now = time(nullptr);
    const std::string cn = host.empty() || host == "0.0.0.0" || host == "::" ? "localhost" : host;
    ok = check(gnutls_x509_crt_set_version(crt, 3), "version", error) &&
         check(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), "serial", error) &&
         check(gnutls_x509_crt_set_activation_time(crt, now - 3600), "activation", error) &&
         check(gnutls_x509_crt_set_expiration_time(crt, now + kValidDays * 24 * 3600), "expiration", error) &&
         check(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn.data(), cn.size()),
               "name", error) &&
         check(gnutls_x509_crt_set_key(crt, key), "public key", error) &&
         check(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "constraints", error) &&
         check(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "usage", error) &&
         check(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), "purpose", error) &&
         check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND),
               "localhost name", error);
    const unsigned char loopback[4] = {127, 0, 0, 1};
    ok = ok && check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, loopback, 4, GNUTLS_FSAN_APPEND),
                     "loopback address", error);
    GInetAddress *address = g_inet_address_new_from_string(cn.c_str());
    if (ok && address)
      ok = check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, g_inet_address_to_bytes(address),
                                                      g_inet_address_get_native_size(address), GNUTLS_FSAN_APPEND),
                 "address", error);
    else if (ok && cn != "localhost")
      ok = check(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn.data(), cn.size(),
                                                      GNUTLS_FSAN_APPEND),
                 "host name", error);
    if (address) g_object_unref(address);
    ok = ok && check(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), "signature", error);
  }
  if (ok) {
    gnutls_datum_t c{}, k{};
    pem->cert = take_datum(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c), &c);
    pem->key = take_datum(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &k), &k);
    ok = !pem->cert.empty() && !pem->key.empty();
    if (!ok) *error = "could not export the certificate";
  }
  if (crt) gnutls_x509_crt_deinit(crt);
  if (key) gnutls_x509_privkey_deinit(key);
  return ok;
}

bool write_file(const gchar *path, const std::string &data, int mode, std::string *error) {
  GError *e = nullptr;
  if (!g_file_set_contents_full(path, data.data(), data.size(), G_FILE_SET_CONTENTS_CONSISTENT, mode, &e)) {
    *error = e->message;
    g_error_free(e);
    return false;
  }
  return true;
}

}  // namespace

GTlsCertificate *load_or_create_certificate(const std::string &dir, const std::string &host, std::string *error) {
  gchar *cert_path = g_build_filename(dir.c_str(), "cert.pem", nullptr);
  gchar *key_path = g_build_filename(dir.c_str(), "key.pem", nullptr);
  const bool have_cert = g_file_test(cert_path, G_FILE_TEST_EXISTS);
  const bool have_key = g_file_test(key_path, G_FILE_TEST_EXISTS);
  GTlsCertificate *certificate = nullptr;
  if (have_cert != have_key) {
    *error = std::string("\"") + dir + "\" has only one of cert.pem and key.pem";
  } else {
    bool ready = have_cert;
    if (!ready) {
      Pem pem;
      if (g_mkdir_with_parents(dir.c_str(), 0700) != 0) {
        *error = "cannot create \"" + dir + "\"";
      } else if (make_self_signed(host, &pem, error) && write_file(key_path, pem.key, 0600, error) &&
                 write_file(cert_path, pem.cert, 0644, error)) {
        g_print("Made a self-signed certificate: %s\n", cert_path);
        ready = true;
      }
    }
    if (ready) {
      GError *e = nullptr;
      certificate = g_tls_certificate_new_from_files(cert_path, key_path, &e);
      if (!certificate) {
        *error = std::string(e->message) + " (" + cert_path + ", " + key_path + ")";
        g_error_free(e);
      }
    }
  }
  g_free(cert_path);
  g_free(key_path);
  return certificate;
}

}  // namespace ppserver
