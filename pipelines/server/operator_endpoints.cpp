#include "operator_endpoints.h"

#include "capacity.h"
#include "server.h"

namespace ppserver {
namespace {

void answer(SoupServerMessage *msg, guint status, const char *type, const std::string &body) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Cache-Control", "no-store");
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body.data(), body.size());
}

void answer_text(SoupServerMessage *msg, guint status, const std::string &text) {
  answer(msg, status, "text/plain; charset=utf-8", text + "\n");
}

bool is_get(SoupServerMessage *msg) {
  const char *method = soup_server_message_get_method(msg);
  if (g_strcmp0(method, SOUP_METHOD_GET) == 0 || g_strcmp0(method, SOUP_METHOD_HEAD) == 0) return true;
  answer_text(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "GET only");
  return false;
}

// From this machine and not relayed by a proxy on it (a balancer on the
// same host connects from loopback too, and adds these headers).
bool from_this_machine(SoupServerMessage *msg) {
  SoupMessageHeaders *headers = soup_server_message_get_request_headers(msg);
  for (const char *h : {"X-Forwarded-For", "Forwarded", "X-Real-IP"})
    if (soup_message_headers_get_one(headers, h)) return false;
  GSocketAddress *remote = soup_server_message_get_remote_address(msg);
  if (!remote || !G_IS_INET_SOCKET_ADDRESS(remote)) return false;
  return g_inet_address_get_is_loopback(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(remote)));
}

void healthz_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  const Server *server = static_cast<Server *>(data);
  if (!is_get(msg)) return;
  if (server->healthy())
    answer_text(msg, SOUP_STATUS_OK, "ok");
  else
    answer_text(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "down: " + server->health_problem());
}

void readyz_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  if (!is_get(msg)) return;
  std::string text;
  const unsigned status = readiness(capacity_of(*static_cast<Server *>(data)), &text);
  answer_text(msg, status, text);
}

void metrics_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  if (!is_get(msg)) return;
  answer(msg, SOUP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", static_cast<Server *>(data)->metrics_text());
}

void drain_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  Server *server = static_cast<Server *>(data);
  if (g_strcmp0(soup_server_message_get_method(msg), SOUP_METHOD_POST) != 0) {
    answer_text(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "POST only");
    return;
  }
  if (!from_this_machine(msg)) {
    answer_text(msg, SOUP_STATUS_FORBIDDEN, "drain is asked for from the server's own machine only");
    return;
  }
  if (!server->request_drain()) {
    answer_text(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "this server cannot drain on request");
    return;
  }
  answer_text(msg, SOUP_STATUS_ACCEPTED,
              "draining: " + std::to_string(server->slots_in_use()) + " calls to finish, then the server exits");
}

}  // namespace

void add_operator_endpoints(Server *server, SoupServer *soup) {
  soup_server_add_handler(soup, "/healthz", healthz_cb, server, nullptr);
  soup_server_add_handler(soup, "/readyz", readyz_cb, server, nullptr);
  soup_server_add_handler(soup, "/metrics", metrics_cb, server, nullptr);
  soup_server_add_handler(soup, "/admin/drain", drain_cb, server, nullptr);
}

}  // namespace ppserver
