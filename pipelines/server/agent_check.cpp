#include "agent_check.h"

#include "capacity.h"
#include "server.h"

namespace ppserver {

AgentCheck::~AgentCheck() {
  if (!service_) return;
  g_socket_service_stop(service_);
  g_socket_listener_close(G_SOCKET_LISTENER(service_));
  g_object_unref(service_);
}

bool AgentCheck::start(const std::string &host, int port, std::string *error) {
  GInetAddress *address = g_inet_address_new_from_string(host == "localhost" ? "127.0.0.1" : host.c_str());
  if (!address) {
    *error = "--agent-port needs --host to be an address, not \"" + host + "\"";
    return false;
  }
  GSocketAddress *socket_address = g_inet_socket_address_new(address, guint16(port));
  g_object_unref(address);
  service_ = g_socket_service_new();
  GError *e = nullptr;
  const bool ok = g_socket_listener_add_address(G_SOCKET_LISTENER(service_), socket_address, G_SOCKET_TYPE_STREAM,
                                                G_SOCKET_PROTOCOL_TCP, nullptr, nullptr, &e);
  g_object_unref(socket_address);
  if (!ok) {
    *error = "cannot listen for agent checks on " + host + ":" + std::to_string(port) + ": " + e->message;
    g_error_free(e);
    return false;
  }
  g_signal_connect(service_, "incoming", G_CALLBACK(incoming_cb), this);
  g_socket_service_start(service_);
  return true;
}

// The answer fits in the socket's buffer: written at once, then closed.
gboolean AgentCheck::incoming_cb(GSocketService *, GSocketConnection *connection, GObject *, gpointer data) {
  AgentCheck *self = static_cast<AgentCheck *>(data);
  const std::string answer = agent_answer(capacity_of(*self->server_));
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(connection));
  g_output_stream_write_all(out, answer.data(), answer.size(), nullptr, nullptr, nullptr);
  g_io_stream_close(G_IO_STREAM(connection), nullptr, nullptr);
  return TRUE;
}

}  // namespace ppserver
