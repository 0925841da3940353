#include "config.h"

#include <gio/gio.h>

#include <cstdio>

#include "default_model.h"
#include "voices.h"

namespace ppserver {
namespace {

std::string take(gchar *s) {
  std::string out = s ? s : "";
  g_free(s);
  return out;
}

// Whether a UDP socket can be bound on `address` (one of this machine's).
bool is_local_address(const std::string &address) {
  GInetAddress *inet = g_inet_address_new_from_string(address.c_str());
  if (!inet) return false;
  GSocket *socket = g_socket_new(g_inet_address_get_family(inet), G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, nullptr);
  GSocketAddress *any_port = g_inet_socket_address_new(inet, 0);
  const bool ok = socket && g_socket_bind(socket, any_port, FALSE, nullptr);
  g_object_unref(any_port);
  if (socket) g_object_unref(socket);
  g_object_unref(inet);
  return ok;
}

bool usage_error(GOptionContext *context, const std::string &message) {
  g_printerr("personaplex-server: %s\n(see --help)\n", message.c_str());
  g_option_context_free(context);
  return false;
}

}  // namespace

bool parse_command_line(int argc, char **argv, Config *config) {
  gchar *host = nullptr, *ssl = nullptr, *www = nullptr, *static_dir = nullptr;
  gchar *model_dir = nullptr, *lm_weights = nullptr, *lm_config = nullptr, *mimi_weights = nullptr,
        *mimi_config = nullptr, *tokenizer = nullptr, *voices_dir = nullptr, *device = nullptr,
        *voice = nullptr, *prompt = nullptr, *weight_format = nullptr, *kv_cache = nullptr, *mimi_dtype = nullptr,
        *stun = nullptr, *turn = nullptr, *ports = nullptr;
  gchar **ice = nullptr;
  gboolean http = FALSE, no_preload = FALSE, batch = FALSE;
  gint64 latency = config->latency_ns;
  gint port = config->port, max_sessions = config->max_sessions, max_prompt = config->max_prompt_chars,
       idle = config->idle_timeout_s, handshake = config->handshake_timeout_s, max_call = config->max_call_s,
       agent_port = config->agent_port, drain_timeout = config->drain_timeout_s,
       offload_layers = config->model.offload_layers;

  const GOptionEntry entries[] = {
      {"host", 0, 0, G_OPTION_ARG_STRING, &host, "Address to listen on (default 127.0.0.1; 0.0.0.0 for all)", "ADDR"},
      {"port", 0, 0, G_OPTION_ARG_INT, &port, "Port (default 8998; 0 picks a free one)", "PORT"},
      {"ssl", 0, 0, G_OPTION_ARG_FILENAME, &ssl,
       "HTTPS with DIR/cert.pem and DIR/key.pem; a self-signed pair is made there when DIR has none", "DIR"},
      {"http", 0, 0, G_OPTION_ARG_NONE, &http, "Plain HTTP (browsers allow the microphone only on localhost)", nullptr},
      {"www", 0, 0, G_OPTION_ARG_FILENAME, &www, "Serve the web page from DIR instead of the built-in copy", "DIR"},
      {"static", 0, 0, G_OPTION_ARG_FILENAME, &static_dir,
       "Serve the directory tree DIR at / instead of the page (e.g. the reference's built web client)", "DIR"},
      {"model-dir", 0, 0, G_OPTION_ARG_FILENAME, &model_dir,
       "Directory with the released model files (default ./personaplex-7b-v1 when there, else a demo model of "
       "random weights)",
       "DIR"},
      {"lm-weights", 0, 0, G_OPTION_ARG_FILENAME, &lm_weights, "LM weights (safetensors)", "FILE"},
      {"lm-config", 0, 0, G_OPTION_ARG_FILENAME, &lm_config, "LM config.json", "FILE"},
      {"mimi-weights", 0, 0, G_OPTION_ARG_FILENAME, &mimi_weights, "Mimi weights (safetensors)", "FILE"},
      {"mimi-config", 0, 0, G_OPTION_ARG_FILENAME, &mimi_config, "Mimi config.json", "FILE"},
      {"tokenizer", 0, 0, G_OPTION_ARG_FILENAME, &tokenizer, "SentencePiece model", "FILE"},
      {"voices-dir", 0, 0, G_OPTION_ARG_FILENAME, &voices_dir, "Voices offered to clients (default MODEL_DIR/voices)", "DIR"},
      {"device", 0, 0, G_OPTION_ARG_STRING, &device, "auto (default), cpu, cuda, cuda:N", "DEV"},
      {"weight-format", 0, 0, G_OPTION_ARG_STRING, &weight_format,
       "The LM's linear weights: auto (as loaded, default), int8 or fp8 (half the memory)", "FORMAT"},
      {"kv-cache", 0, 0, G_OPTION_ARG_STRING, &kv_cache,
       "Each call's attention cache: auto (the model's dtype, default) or fp8 (half the memory: twice the calls)",
       "FORMAT"},
      {"mimi-dtype", 0, 0, G_OPTION_ARG_STRING, &mimi_dtype,
       "The codec: auto (float32, the reference's codes, default) or bfloat16 (faster on GPUs)", "DTYPE"},
      {"offload-layers", 0, 0, G_OPTION_ARG_INT, &offload_layers,
       "Keep the weights of the LM's last N layers in host memory, copied to the GPU every frame (for GPUs too "
       "small for the model; default 0)",
       "N"},
      {"voice", 0, 0, G_OPTION_ARG_STRING, &voice, "Default voice (default NATF2 when present)", "NAME"},
      {"prompt", 0, 0, G_OPTION_ARG_STRING, &prompt, "Default role prompt", "TEXT"},
      {"max-sessions", 0, 0, G_OPTION_ARG_INT, &max_sessions, "Conversations at once (default 1); the next is told busy", "N"},
      {"batch", 0, 0, G_OPTION_ARG_NONE, &batch,
       "Step all calls together, one batched model step per frame for up to --max-sessions calls (the memory "
       "for all of them is taken with the first); a call that asks for its own sampling steps alone",
       nullptr},
      {"max-prompt", 0, 0, G_OPTION_ARG_INT, &max_prompt, "Longest role prompt in characters (default 1000)", "N"},
      {"idle-timeout", 0, 0, G_OPTION_ARG_INT, &idle, "End a call after N s without audio from the client (default 30)", "S"},
      {"handshake-timeout", 0, 0, G_OPTION_ARG_INT, &handshake,
       "A browser must start and connect its call within N s (default 20)", "S"},
      {"max-call", 0, 0, G_OPTION_ARG_INT, &max_call, "End calls after N s (default 0: no limit)", "S"},
      {"latency", 0, 0, G_OPTION_ARG_INT64, &latency,
       "Compute budget of one live model step in ns (the element's latency; default its own): a step over it "
       "is reported as falling behind real time",
       "NS"},
      {"ice-address", 0, 0, G_OPTION_ARG_STRING_ARRAY, &ice,
       "Offer ICE host candidates only on this local address (repeatable)", "ADDR"},
      {"ice-ports", 0, 0, G_OPTION_ARG_STRING, &ports, "UDP ports for calls' media, as MIN-MAX (for a firewall)",
       "MIN-MAX"},
      {"stun-server", 0, 0, G_OPTION_ARG_STRING, &stun, "STUN server, stun://host:port", "URI"},
      {"turn-server", 0, 0, G_OPTION_ARG_STRING, &turn, "TURN server, turn(s)://user:pass@host:port", "URI"},
      {"no-preload", 0, 0, G_OPTION_ARG_NONE, &no_preload,
       "Load the model with the first call instead of at start-up (it is freed when no call is left)", nullptr},
      {"agent-port", 0, 0, G_OPTION_ARG_INT, &agent_port,
       "Answer HAProxy agent checks (free capacity, drain) on this port of --host (default 0: none); a call "
       "with no room is then refused with HTTP 503 before its websocket opens, for HAProxy to try elsewhere", "PORT"},
      {"drain-timeout", 0, 0, G_OPTION_ARG_INT, &drain_timeout,
       "On SIGTERM take no new calls and let the current ones run for at most S s (default 300)", "S"},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
  };
  GOptionContext *context = g_option_context_new("- live PersonaPlex conversations in the browser");
  g_option_context_set_summary(context,
      "Serves a web page for calls over WebRTC and the PersonaPlex websocket protocol at /api/chat.\n"
      "Example: personaplex-server --model-dir personaplex-7b-v1 --ssl ssl");
  g_option_context_add_main_entries(context, entries, nullptr);
  GError *error = nullptr;
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    const std::string message = error->message;
    g_error_free(error);
    return usage_error(context, message);
  }
  if (argc > 1) return usage_error(context, std::string("unexpected argument \"") + argv[1] + "\"");

  if (host) config->host = take(host);
  config->port = port;
  config->ssl_dir = take(ssl);
  config->http = http;
  config->www_dir = take(www);
  config->static_dir = take(static_dir);
  ModelFiles &m = config->model;
  m.model_dir = take(model_dir);
  m.lm_weights = take(lm_weights);
  m.lm_config = take(lm_config);
  m.mimi_weights = take(mimi_weights);
  m.mimi_config = take(mimi_config);
  m.tokenizer = take(tokenizer);
  if (device) m.device = take(device);
  m.weight_format = take(weight_format);
  m.kv_cache = take(kv_cache);
  m.mimi_dtype = take(mimi_dtype);
  m.offload_layers = offload_layers;
  config->voices_dir = take(voices_dir);
  config->voice = take(voice);
  config->prompt = take(prompt);
  config->max_sessions = max_sessions;
  config->batch = batch;
  config->max_prompt_chars = max_prompt;
  config->idle_timeout_s = idle;
  config->handshake_timeout_s = handshake;
  config->max_call_s = max_call;
  config->latency_ns = latency;
  for (gchar **a = ice; a && *a; ++a) config->ice_addresses.push_back(*a);
  g_strfreev(ice);
  for (const std::string &a : config->ice_addresses)
    if (!is_local_address(a)) return usage_error(context, "--ice-address " + a + " is not an address of this machine");
  const std::string port_range = take(ports);
  if (!port_range.empty()) {
    unsigned lo = 0, hi = 0;
    char end = 0;
    if (sscanf(port_range.c_str(), "%u-%u%c", &lo, &hi, &end) != 2 || lo < 1 || hi > 65535 || lo > hi)
      return usage_error(context, "--ice-ports takes MIN-MAX, such as 50000-50100");
    config->ice_min_port = int(lo);
    config->ice_max_port = int(hi);
  }
  config->stun_server = take(stun);
  config->turn_server = take(turn);
  config->preload = !no_preload;
  config->agent_port = agent_port;
  config->drain_timeout_s = drain_timeout;

  if (config->port < 0 || config->port > 65535) return usage_error(context, "--port must be 0..65535");
  if (config->http && !config->ssl_dir.empty()) return usage_error(context, "--http and --ssl exclude each other");
  if (!config->www_dir.empty() && !config->static_dir.empty())
    return usage_error(context, "--www and --static exclude each other");
  if (!config->static_dir.empty() && !g_file_test(config->static_dir.c_str(), G_FILE_TEST_IS_DIR))
    return usage_error(context, "--static: \"" + config->static_dir + "\" is not a directory");
  if (config->agent_port < 0 || config->agent_port > 65535) return usage_error(context, "--agent-port must be 0..65535");
  if (config->drain_timeout_s < 0) return usage_error(context, "--drain-timeout cannot be negative");
  if (config->max_sessions < 1) return usage_error(context, "--max-sessions must be at least 1");
  if (config->latency_ns != -1 && (config->latency_ns < 0 || config->latency_ns > 10 * G_GINT64_CONSTANT(1000000000)))
    return usage_error(context, "--latency must be 0..10000000000 ns");
  if (config->max_prompt_chars < 0) return usage_error(context, "--max-prompt cannot be negative");
  if (!m.weight_format.empty() && m.weight_format != "auto" && m.weight_format != "int8" && m.weight_format != "fp8")
    return usage_error(context, "--weight-format takes auto, int8 or fp8, not \"" + m.weight_format + "\"");
  if (!m.kv_cache.empty() && m.kv_cache != "auto" && m.kv_cache != "fp8")
    return usage_error(context, "--kv-cache takes auto or fp8, not \"" + m.kv_cache + "\"");
  if (!m.mimi_dtype.empty() && m.mimi_dtype != "auto" && m.mimi_dtype != "float32" && m.mimi_dtype != "bfloat16")
    return usage_error(context, "--mimi-dtype takes auto, float32 or bfloat16, not \"" + m.mimi_dtype + "\"");
  if (m.offload_layers < 0) return usage_error(context, "--offload-layers cannot be negative");
  if (config->idle_timeout_s < 1 || config->handshake_timeout_s < 1 || config->max_call_s < 0)
    return usage_error(context, "timeouts must be at least 1 s");
  if (m.model_dir.empty() && m.lm_weights.empty() && m.mimi_weights.empty() && m.tokenizer.empty()) {
    std::string why;
    m.model_dir = default_model_dir(&why);
    if (m.model_dir.empty()) return usage_error(context, why);
  }
  if (m.model_dir.empty() && (m.lm_weights.empty() || m.mimi_weights.empty() || m.tokenizer.empty()))
    return usage_error(context, "name the model: --model-dir, or --lm-weights, --mimi-weights and --tokenizer");
  if (config->voices_dir.empty() && !m.model_dir.empty()) {
    gchar *dir = g_build_filename(m.model_dir.c_str(), "voices", nullptr);
    if (g_file_test(dir, G_FILE_TEST_IS_DIR)) config->voices_dir = dir;
    g_free(dir);
  }
  if (!config->voices_dir.empty() && !g_file_test(config->voices_dir.c_str(), G_FILE_TEST_IS_DIR))
    return usage_error(context, "voices directory \"" + config->voices_dir + "\" not found");
  if (config->voice.empty()) {
    config->voice = default_voice(config->voices_dir);
  } else {
    std::string why;
    const std::string found = find_voice(config->voices_dir, config->voice, &why);
    if (found.empty()) return usage_error(context, "--voice: " + why);
    config->voice = found;
  }
  if (g_utf8_strlen(config->prompt.c_str(), -1) > config->max_prompt_chars)
    return usage_error(context, "--prompt is longer than --max-prompt");
  g_option_context_free(context);
  return true;
}

}  // namespace ppserver
