// Test harness for personaplex-server: runs the server on the fixtures'
// tiny model (CPU, loopback, a free port) and talks to it over HTTP and
// websockets with libsoup. Waits run the main loop with a deadline.
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

#include <functional>
#include <string>
#include <vector>

namespace harness {

// The fixtures directory, or exits 77 (skipped) when absent.
std::string fixtures();

// A temporary directory with two voices (NATF2.pt, NATM1.pt: the fixtures'
// voice), removed at exit.
std::string voices_dir();

// Runs the main loop until `done()` or `seconds` pass; returns done().
bool wait_until(const std::function<bool()> &done, double seconds);

class ServerProcess {
 public:
  // Starts the server with the fixture model and `extra` options; fails the
  // test when it does not listen. `https` asks for an https:// URL.
  explicit ServerProcess(const std::vector<std::string> &extra = {}, bool https = false);
  ~ServerProcess();

  const std::string &url() const { return url_; }  // "http://127.0.0.1:PORT/"
  std::string ws_url(const std::string &path) const;
  // Everything the server printed so far.
  const std::string &output() const { return output_; }

 private:
  static void line_cb(GObject *stream, GAsyncResult *result, gpointer self);
  void read_next();

  GSubprocess *process_ = nullptr;
  GDataInputStream *out_ = nullptr;
  GCancellable *cancel_ = nullptr;
  std::string url_, output_;
  bool eof_ = false;
};

// The server's exit status and output when run with `args` (it must exit).
int run_server(const std::vector<std::string> &args, std::string *output);

// The fixture model's options (files, CPU, the test voices).
std::vector<std::string> model_options();

struct Response {
  guint status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A response header's value ("" when absent); names match in any case.
  std::string header(const std::string &name) const;
};
Response http_get(const std::string &url, const std::vector<std::pair<std::string, std::string>> &headers = {});

// A websocket client that records what it receives.
class Client {
 public:
  struct Message {
    SoupWebsocketDataType type;
    std::string data;
  };

  // Connects; on failure `connected()` is false and `status()` holds the
  // HTTP status of the refused handshake.
  Client(const std::string &url, const std::string &origin = "");
  ~Client();

  bool connected() const { return ws_ != nullptr; }
  guint status() const { return status_; }
  bool closed() const { return closed_; }
  gushort close_code() const { return close_code_; }
  const std::string &close_reason() const { return close_reason_; }
  std::vector<Message> &messages() { return messages_; }

  void send_binary(const std::string &data);
  void send_text(const std::string &text);
  void close(gushort code = 1000);
  // Drops the connection without a close frame, as a vanished peer.
  void drop();

  bool wait_closed(double seconds);
  // Waits for a binary message whose first byte is `kind`; returns its index.
  int wait_binary(guint8 kind, double seconds, size_t from = 0);

 private:
  static void connected_cb(GObject *session, GAsyncResult *result, gpointer self);
  static void message_cb(SoupWebsocketConnection *, gint type, GBytes *message, gpointer self);
  static void closed_cb(SoupWebsocketConnection *, gpointer self);

  SoupSession *session_ = nullptr;
  SoupMessage *msg_ = nullptr;
  SoupWebsocketConnection *ws_ = nullptr;
  bool done_ = false, closed_ = false;
  guint status_ = 0;
  gushort close_code_ = 0;
  std::string close_reason_;
  std::vector<Message> messages_;
};

// Encodes a WAV file, `repeat` times in a row, to one Ogg/Opus stream
// (opusenc, 20 ms packets, unless another `encoder` is named).
std::string ogg_opus_of_wav(const std::string &path, int repeat = 1, const std::string &encoder = "opusenc frame-size=20");

// A WAV file's samples as interleaved float at `rate`, `channels`.
std::vector<float> pcm_of_wav(const std::string &path, int rate, int channels);

// Decodes an Ogg/Opus stream to 24 kHz mono float samples.
std::vector<float> decode_ogg_opus(const std::string &ogg);

}  // namespace harness
