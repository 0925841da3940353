#include "ice_servers.h"

namespace ppserver {
namespace {

// stun://host:port or turn(s)://user:pass@host:port (webrtcbin's form) as a
// browser's RTCIceServer; null when the URI does not parse.
nlohmann::json browser_server(const std::string &uri) {
  GUri *u = g_uri_parse(uri.c_str(), G_URI_FLAGS_HAS_PASSWORD, nullptr);
  if (!u || !g_uri_get_host(u)) {
    if (u) g_uri_unref(u);
    return nullptr;
  }
  const std::string scheme = g_uri_get_scheme(u);
  const int port = g_uri_get_port(u) > 0 ? g_uri_get_port(u) : scheme == "turns" ? 5349 : 3478;
  std::string host = g_uri_get_host(u);
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  nlohmann::json server{{"urls", scheme + ":" + host + ":" + std::to_string(port)}};
  if (g_uri_get_user(u)) server["username"] = g_uri_get_user(u);
  if (g_uri_get_password(u)) server["credential"] = g_uri_get_password(u);
  g_uri_unref(u);
  return server;
}

void ice_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  const std::string body = browser_ice_servers(*static_cast<const Config *>(data)).dump();
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Cache-Control", "no-store");
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, body.data(), body.size());
}

}  // namespace

nlohmann::json browser_ice_servers(const Config &config) {
  nlohmann::json servers = nlohmann::json::array();
  for (const std::string &uri : {config.stun_server, config.turn_server}) {
    if (uri.empty()) continue;
    nlohmann::json s = browser_server(uri);
    if (!s.is_null()) servers.push_back(s);
  }
  return {{"iceServers", servers}};
}

void add_ice_endpoint(const Config *config, SoupServer *soup) {
  soup_server_add_handler(soup, "/api/ice", ice_cb, const_cast<Config *>(config), nullptr);
}

}  // namespace ppserver
