#include "server.h"

#include "public_message.h"

#include <nlohmann/json.hpp>

#include <map>

#include "certificate.h"
#include "chat_session.h"
#include "conversation.h"
#include "ice_servers.h"
#include "operator_endpoints.h"
#include "session.h"
#include "voices.h"
#include "webrtc_session.h"

namespace ppserver {
namespace {

using json = nlohmann::json;

constexpr const char *kResourcePrefix = "/org/personaplex/server/www";
constexpr gsize kChatMaxMessage = 1 << 20;       // Ogg pages of audio, cut anywhere
constexpr gsize kSignallingMaxMessage = 1 << 16;  // SDP and candidates

const char *content_type(const std::string &name) {
  static const std::map<std::string, const char *> types = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".png", "image/png"},
      {".svg", "image/svg+xml"},             {".ico", "image/x-icon"},
  };
  const size_t dot = name.rfind('.');
  auto it = dot == std::string::npos ? types.end() : types.find(name.substr(dot));
  return it == types.end() ? "application/octet-stream" : it->second;
}

void respond(SoupServerMessage *msg, guint status, const char *type, const std::string &body) {
  soup_server_message_set_status(msg, status, nullptr);
  SoupMessageHeaders *headers = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(headers, "Cache-Control", "no-store");
  soup_message_headers_replace(headers, "X-Content-Type-Options", "nosniff");
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body.data(), body.size());
}

void respond_json(SoupServerMessage *msg, const json &body) {
  respond(msg, SOUP_STATUS_OK, "application/json", body.dump());
}

void respond_error(SoupServerMessage *msg, guint status, const std::string &text) {
  respond(msg, status, "text/plain; charset=utf-8", public_message(text) + "\n");
}

std::map<std::string, std::string> query_fields(GHashTable *query) {
  std::map<std::string, std::string> fields;
  if (!query) return fields;
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init(&it, query);
  while (g_hash_table_iter_next(&it, &key, &value))
    fields[static_cast<const char *>(key)] = value ? static_cast<const char *>(value) : "";
  return fields;
}

// A web page file: only plain names, from the directory or the resources.
bool read_page_file(const std::string &www_dir, const std::string &name, GBytes **out) {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos || name.find('\\') != std::string::npos)
    return false;
  if (!www_dir.empty()) {
    gchar *path = g_build_filename(www_dir.c_str(), name.c_str(), nullptr);
    gchar *data = nullptr;
    gsize size = 0;
    const bool ok = g_file_test(path, G_FILE_TEST_IS_REGULAR) && g_file_get_contents(path, &data, &size, nullptr);
    g_free(path);
    if (ok) *out = g_bytes_new_take(data, size);
    return ok;
  }
  const std::string path = std::string(kResourcePrefix) + "/" + name;
  *out = g_resources_lookup_data(path.c_str(), G_RESOURCE_LOOKUP_FLAGS_NONE, nullptr);
  return *out != nullptr;
}

// The host and port of a URI; the port defaults by scheme.
bool authority(const std::string &uri, std::string *host, int *port) {
  GUri *parsed = g_uri_parse(uri.c_str(), G_URI_FLAGS_NONE, nullptr);
  if (!parsed || !g_uri_get_host(parsed)) {
    if (parsed) g_uri_unref(parsed);
    return false;
  }
  gchar *h = g_ascii_strdown(g_uri_get_host(parsed), -1);
  *host = h;
  g_free(h);
  *port = g_uri_get_port(parsed);
  if (*port < 0) *port = g_strcmp0(g_uri_get_scheme(parsed), "https") == 0 ? 443 : 80;
  g_uri_unref(parsed);
  return true;
}

// Pages of other sites may not start calls from the user's browser.
bool same_origin(SoupServerMessage *msg) {
  SoupMessageHeaders *headers = soup_server_message_get_request_headers(msg);
  const char *origin = soup_message_headers_get_one(headers, "Origin");
  const char *host_header = soup_message_headers_get_one(headers, "Host");
  if (!origin) return true;  // not a browser
  if (!host_header) return false;
  std::string origin_host, host;
  int origin_port = 0, port = 0;
  if (!authority(origin, &origin_host, &origin_port)) return false;
  const std::string scheme = g_str_has_prefix(origin, "https:") ? "https://" : "http://";
  if (!authority(scheme + host_header, &host, &port)) return false;
  return origin_host == host && origin_port == port;
}

}  // namespace

Server::Server(const Config &config) : config_(config) {
  if (!config_.static_dir.empty()) static_files_ = std::make_unique<StaticFiles>(config_.static_dir);
}

Server::~Server() {
  if (request_timer_) g_source_remove(request_timer_);
  if (batch_timer_) g_source_remove(batch_timer_);
  while (!requests_.empty()) forget_request(requests_.begin()->first);
  if (soup_) {
    soup_server_disconnect(soup_);
    g_object_unref(soup_);
  }
}

bool Server::take_slot() {
  if (draining_ || slots_in_use_ >= config_.max_sessions) {
    metrics_.call_refused(draining_ ? "draining" : "busy");
    return false;
  }
  ++slots_in_use_;
  return true;
}

void Server::give_slot() {
  if (slots_in_use_ > 0) --slots_in_use_;
}

bool Server::start(std::string *error, std::string *url) {
  if (static_files_ && !static_files_->ok()) {
    *error = static_files_->error();
    return false;
  }
  GTlsCertificate *certificate = nullptr;
  const bool https = !config_.http;
  if (https) {
    std::string dir = config_.ssl_dir;
    if (dir.empty()) {
      gchar *d = g_build_filename(g_get_user_config_dir(), "personaplex-server", "ssl", nullptr);
      dir = d;
      g_free(d);
    }
    certificate = load_or_create_certificate(dir, config_.host, error);
    if (!certificate) return false;
  }
  soup_ = SOUP_SERVER(g_object_new(SOUP_TYPE_SERVER, "server-header", "personaplex-server ", nullptr));
  if (certificate) {
    g_object_set(soup_, "tls-certificate", certificate, nullptr);
    g_object_unref(certificate);
  }

  g_signal_connect(soup_, "request-started", G_CALLBACK(request_started_cb), this);
  request_timer_ = g_timeout_add_seconds(1, request_timeout_cb, this);
  soup_server_add_handler(soup_, nullptr, static_cb, this, nullptr);
  soup_server_add_handler(soup_, "/api/voices", voices_cb, this, nullptr);
  soup_server_add_handler(soup_, "/api/status", status_cb, this, nullptr);
  soup_server_add_handler(soup_, "/api/chat", chat_check_cb, this, nullptr);
  soup_server_add_websocket_handler(soup_, "/api/chat", nullptr, nullptr, chat_ws_cb, this, nullptr);
  soup_server_add_handler(soup_, "/ws", signalling_check_cb, this, nullptr);
  soup_server_add_websocket_handler(soup_, "/ws", nullptr, nullptr, signalling_ws_cb, this, nullptr);
  add_operator_endpoints(this, soup_);
  add_ice_endpoint(&config_, soup_);
  batch_timer_ = g_timeout_add_seconds(1, sample_batch_cb, this);

  std::string host = config_.host == "localhost" ? "127.0.0.1" : config_.host;
  GInetAddress *address = g_inet_address_new_from_string(host.c_str());
  if (!address) {
    GList *found = g_resolver_lookup_by_name(g_resolver_get_default(), host.c_str(), nullptr, nullptr);
    if (found) address = G_INET_ADDRESS(g_object_ref(found->data));
    g_resolver_free_addresses(found);
  }
  if (!address) {
    *error = "cannot resolve \"" + config_.host + "\"";
    return false;
  }
  GSocketAddress *socket_address = g_inet_socket_address_new(address, static_cast<guint16>(config_.port));
  g_object_unref(address);
  GError *e = nullptr;
  const bool ok = soup_server_listen(
      soup_, socket_address, https ? SOUP_SERVER_LISTEN_HTTPS : static_cast<SoupServerListenOptions>(0), &e);
  g_object_unref(socket_address);
  if (!ok) {
    *error = std::string("cannot listen on ") + config_.host + ":" + std::to_string(config_.port) + ": " + e->message;
    g_error_free(e);
    return false;
  }
  GSList *uris = soup_server_get_uris(soup_);
  if (uris) {
    gchar *s = g_uri_to_string(static_cast<GUri *>(uris->data));
    *url = s;
    g_free(s);
  }
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  return true;
}

void Server::shut_down() {
  shutting_down_ = true;
  if (soup_) soup_server_disconnect(soup_);
  const std::set<Session *> sessions = sessions_;
  for (Session *s : sessions) s->fail(1001, "the server is shutting down");
  const gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  while ((slots_in_use_ > 0 || !sessions_.empty()) && g_get_monotonic_time() < deadline)
    g_main_context_iteration(nullptr, TRUE);
}

// A request must arrive (and be answered) within the handshake timeout: a
// client that connects and says nothing, or half a request, does not hold a
// socket forever. A websocket takes the connection out of this (its session
// has timeouts). Every plain response closes its connection: libsoup 3.2
// never closes an idle keep-alive connection, not even once the client has
// closed its end, so each one would hold a socket for good. A websocket
// handshake replaces the header with its own "Upgrade".
void Server::request_started_cb(SoupServer *, SoupServerMessage *msg, gpointer data) {
  Server *self = static_cast<Server *>(data);
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection", "close");
  GSocket *socket = soup_server_message_get_socket(msg);
  if (!socket) return;
  const gint64 deadline = g_get_monotonic_time() + gint64(self->config_.handshake_timeout_s) * G_USEC_PER_SEC;
  self->requests_[G_OBJECT(msg)] = {G_SOCKET(g_object_ref(socket)), deadline};
  g_object_weak_ref(G_OBJECT(msg), request_gone_cb, self);
  g_signal_connect(msg, "finished", G_CALLBACK(request_finished_cb), self);
}

void Server::request_finished_cb(SoupServerMessage *msg, gpointer data) {
  static_cast<Server *>(data)->forget_request(G_OBJECT(msg));
}

void Server::request_gone_cb(gpointer data, GObject *msg) {
  Server *self = static_cast<Server *>(data);
  auto it = self->requests_.find(msg);
  if (it == self->requests_.end()) return;
  g_object_unref(it->second.socket);
  self->requests_.erase(it);
}

void Server::forget_request(GObject *msg) {
  auto it = requests_.find(msg);
  if (it == requests_.end()) return;
  g_object_weak_unref(msg, request_gone_cb, this);
  g_signal_handlers_disconnect_by_func(msg, reinterpret_cast<gpointer>(request_finished_cb), this);
  g_object_unref(it->second.socket);
  requests_.erase(it);
}

gboolean Server::request_timeout_cb(gpointer data) {
  Server *self = static_cast<Server *>(data);
  const gint64 now = g_get_monotonic_time();
  for (auto &r : self->requests_)
    if (now > r.second.deadline) g_socket_shutdown(r.second.socket, TRUE, TRUE, nullptr);
  return G_SOURCE_CONTINUE;
}

void Server::static_cb(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer data) {
  Server *self = static_cast<Server *>(data);
  const char *method = soup_server_message_get_method(msg);
  if (g_strcmp0(method, SOUP_METHOD_GET) != 0 && g_strcmp0(method, SOUP_METHOD_HEAD) != 0) {
    respond_error(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "GET only");
    return;
  }
  if (self->static_files_) {
    self->static_files_->serve(msg, path);
    return;
  }
  const std::string name = g_strcmp0(path, "/") == 0 ? "index.html" : std::string(path).substr(1);
  GBytes *bytes = nullptr;
  if (!read_page_file(self->config_.www_dir, name, &bytes)) {
    respond_error(msg, SOUP_STATUS_NOT_FOUND, "not found");
    return;
  }
  gsize size = 0;
  const char *body = static_cast<const char *>(g_bytes_get_data(bytes, &size));
  respond(msg, SOUP_STATUS_OK, content_type(name), std::string(body, size));
  g_bytes_unref(bytes);
}

void Server::voices_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  Server *self = static_cast<Server *>(data);
  const Config &c = self->config_;
  respond_json(msg, json{{"voices", list_voices(c.voices_dir)},
                         {"default_voice", c.voice},
                         {"default_prompt", c.prompt},
                         {"max_prompt", c.max_prompt_chars}});
}

void Server::status_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  Server *self = static_cast<Server *>(data);
  respond_json(msg, json{{"sessions", self->slots_in_use_}, {"max_sessions", self->config_.max_sessions}});
}

// Behind HAProxy (agent checks on) a call this server has no room for is
// refused with 503 before the websocket handshake: HAProxy, whose last
// agent check may still have said there was room, tries it on another
// instance (retry-on 503). Otherwise the websocket opens and is closed with
// 1013 and the reason, which a browser's page can show.
bool Server::refused_before_handshake(SoupServerMessage *msg) {
  if (!config_.agent_port || has_room()) return false;
  metrics_.call_refused(draining_ ? "draining" : "busy");
  respond_error(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, refusal());
  return true;
}

// Before the websocket handshake: a bad request is answered with 400 and
// the reason, as plain HTTP.
void Server::chat_check_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *query, gpointer data) {
  Server *self = static_cast<Server *>(data);
  Conversation conversation;
  const std::string problem = read_conversation(self->config_, query_fields(query), true, &conversation);
  if (problem.empty()) {
    self->refused_before_handshake(msg);
    return;
  }
  self->metrics_.call_refused("bad_request");
  respond_error(msg, SOUP_STATUS_BAD_REQUEST, problem);
}

void Server::chat_ws_cb(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                        gpointer data) {
  Server *self = static_cast<Server *>(data);
  self->forget_request(G_OBJECT(msg));
  soup_websocket_connection_set_max_incoming_payload_size(ws, kChatMaxMessage);
  const char *q = g_uri_get_query(soup_server_message_get_uri(msg));
  GHashTable *query = q ? soup_form_decode(q) : nullptr;
  Conversation conversation;
  const std::string problem = read_conversation(self->config_, query_fields(query), true, &conversation);
  if (query) g_hash_table_unref(query);
  if (!problem.empty()) {  // checked before the handshake already
    const std::string reason = public_message(problem);
    const std::string told = "\x05" + reason;
    soup_websocket_connection_send_binary(ws, told.data(), told.size());
    std::string close_reason = reason.substr(0, 120);  // a control frame's room, whole characters
    while (!close_reason.empty() && !g_utf8_validate(close_reason.data(), gssize(close_reason.size()), nullptr))
      close_reason.pop_back();
    soup_websocket_connection_close(ws, 1008, close_reason.c_str());
    return;
  }
  ChatSession::open(self, ws, conversation);
}

void Server::signalling_check_cb(SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
  if (!same_origin(msg)) {
    respond_error(msg, SOUP_STATUS_FORBIDDEN, "calls start from this server's own page");
    return;
  }
  static_cast<Server *>(data)->refused_before_handshake(msg);
}

void Server::signalling_ws_cb(SoupServer *, SoupServerMessage *msg, const char *, SoupWebsocketConnection *ws,
                              gpointer data) {
  Server *self = static_cast<Server *>(data);
  self->forget_request(G_OBJECT(msg));
  soup_websocket_connection_set_max_incoming_payload_size(ws, kSignallingMaxMessage);
  WebRtcSession::open(self, ws);
}

}  // namespace ppserver
