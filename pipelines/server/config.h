// The server's command line: where to listen, which model, which limits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ppserver {

// The model files, passed as they are to every personaplex element (empty =
// not set, the element's default).
struct ModelFiles {
  std::string model_dir, lm_weights, lm_config, mimi_weights, mimi_config, tokenizer;
  std::string device = "auto";
  // The element's weight-format, kv-cache and mimi-dtype ("": its default).
  std::string weight_format, kv_cache, mimi_dtype;
  int offload_layers = 0;  // the element's offload-layers
};

struct Config {
  std::string host = "127.0.0.1";
  int port = 8998;
  std::string ssl_dir;  // HTTPS with DIR/cert.pem and DIR/key.pem
  bool http = false;    // plain HTTP instead
  std::string www_dir;  // serve the page from here instead of the built-in copy
  std::string static_dir;  // serve this tree at / instead of the page (another web client)

  ModelFiles model;
  std::string voices_dir;  // effective: --voices-dir, else MODEL_DIR/voices
  std::string voice;       // default voice (a file name in voices_dir)
  std::string prompt;      // default role prompt

  int max_sessions = 1;
  bool batch = false;  // calls step together, in one batch of max_sessions slots
  int max_prompt_chars = 1000;
  int idle_timeout_s = 30;       // no audio from the client for this long ends a call
  int handshake_timeout_s = 20;  // a browser call must be connected within this
  int max_call_s = 0;            // 0 = no limit on a call's length
  int64_t latency_ns = -1;       // the element's compute budget per live step (-1: its default)

  std::vector<std::string> ice_addresses;  // gather host candidates only on these
  int ice_min_port = 0, ice_max_port = 0;  // 0: any
  std::string stun_server, turn_server;
  bool preload = true;  // load the model (and check the default voice) at start-up

  int agent_port = 0;         // HAProxy agent checks on --host:PORT (0: none)
  int drain_timeout_s = 300;  // SIGTERM: how long the calls may still run
};

// Parses argv into `config`; on a usage error prints it and returns false.
bool parse_command_line(int argc, char **argv, Config *config);

}  // namespace ppserver
