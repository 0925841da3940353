// personaplex-server end to end, without a browser: the PersonaPlex
// websocket protocol (/api/chat) with Ogg/Opus made and checked by
// GStreamer, bad requests, malformed messages, vanishing clients, the
// session limit, timeouts, the signalling websocket's errors, HTTPS and the
// command line. The server runs the fixtures' tiny model on the CPU.
#include <gst/gst.h>
#include <glib/gstdio.h>
#include <opus.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "ogg_opus_maker.h"

using harness::Client;
using harness::ServerProcess;
using json = nlohmann::json;

namespace {

constexpr guint8 kHandshake = 0x00, kAudio = 0x01, kText = 0x02, kError = 0x05;
const char *kChat = "/api/chat?text_prompt=You%20are%20a%20wise%20and%20friendly%20teacher.&voice_prompt=NATF2.pt";

uint32_t le32(const std::string &s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | guint8(s[at + i]);
  return v;
}

uint32_t ogg_crc(const std::string &page) {
  uint32_t crc = 0;
  for (size_t i = 0; i < page.size(); ++i) {
    const guint8 byte = (i >= 22 && i < 26) ? 0 : guint8(page[i]);
    crc ^= uint32_t(byte) << 24;
    for (int k = 0; k < 8; ++k) crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04c11db7u : crc << 1;
  }
  return crc;
}

struct Page {
  guint8 flags = 0;
  int64_t granule = 0;
  uint32_t serial = 0, sequence = 0;
  std::vector<std::string> packets;
};

// `data` must be exactly one whole Ogg page with a correct checksum.
Page parse_one_page(const std::string &data) {
  g_assert_cmpuint(data.size(), >=, 27);
  g_assert_true(data.compare(0, 4, "OggS") == 0);
  Page p;
  p.flags = guint8(data[5]);
  p.granule = int64_t(le32(data, 6)) | (int64_t(le32(data, 10)) << 32);
  p.serial = le32(data, 14);
  p.sequence = le32(data, 18);
  const size_t segments = guint8(data[26]);
  size_t body = 27 + segments, size = 0;
  std::string packet;
  for (size_t i = 0; i < segments; ++i) {
    const size_t n = guint8(data[27 + i]);
    packet += data.substr(body + size, n);
    size += n;
    if (n < 255) {
      p.packets.push_back(packet);
      packet.clear();
    }
  }
  g_assert_cmpuint(27 + segments + size, ==, data.size());  // one page, nothing more
  g_assert_cmpuint(ogg_crc(data), ==, le32(data, 22));
  return p;
}

// The user's turn, as a client would stream it: Ogg/Opus in uneven pieces.
void stream_wav(Client &c, int repeat = 1) {
  const std::string ogg = harness::ogg_opus_of_wav(harness::fixtures() + "/lm/user.wav", repeat);
  g_assert_cmpuint(ogg.size(), >, 1000);
  const size_t pieces[] = {1, 700, 64, 2500, 333};
  size_t i = 0;
  for (size_t at = 0; at < ogg.size(); ++i) {
    const size_t n = std::min(pieces[i % 5], ogg.size() - at);
    c.send_binary(std::string(1, char(kAudio)) + ogg.substr(at, n));
    at += n;
  }
}

std::vector<std::string> payloads(Client &c, guint8 kind) {
  std::vector<std::string> out;
  for (const Client::Message &m : c.messages())
    if (m.type == SOUP_WEBSOCKET_DATA_BINARY && !m.data.empty() && guint8(m.data[0]) == kind)
      out.push_back(m.data.substr(1));
  return out;
}

int sessions(const ServerProcess &server) {
  const harness::Response r = harness::http_get(server.url() + "api/status");
  g_assert_cmpuint(r.status, ==, 200);
  return json::parse(r.body)["sessions"].get<int>();
}

void wait_sessions(const ServerProcess &server, int n) {
  const bool ok = harness::wait_until([&] { return sessions(server) == n; }, 30);
  if (!ok) g_error("the server still has %d sessions, not %d", sessions(server), n);
}

// Waits for the handshake, the first message of a call.
void expect_handshake(Client &c) {
  g_assert_true(c.connected());
  const int at = c.wait_binary(kHandshake, 60);
  if (at != 0) g_error("no handshake first (at %d; closed %d: %u %s)", at, c.closed(), c.close_code(), c.close_reason().c_str());
  g_assert_cmpuint(c.messages()[0].data.size(), ==, 1);
}

void expect_closed(Client &c, gushort code, const char *reason_part) {
  if (!c.wait_closed(30)) g_error("not closed");
  // libsoup (3.2) takes 1013, "try again later", for a protocol error and
  // drops the reason: the message before the close says it then.
  if (code == 1013 && c.close_code() == 1002) return;
  if (c.close_code() != code || c.close_reason().find(reason_part) == std::string::npos)
    g_error("closed with %u \"%s\", expected %u \"...%s...\"", c.close_code(), c.close_reason().c_str(), code,
            reason_part);
}

// ---------------------------------------------------------------------------

void test_http() {
  ServerProcess server;
  harness::Response page = harness::http_get(server.url());
  g_assert_cmpuint(page.status, ==, 200);
  g_assert_true(page.body.find("PersonaPlex") != std::string::npos);
  for (const char *file : {"app.js", "style.css"}) g_assert_cmpuint(harness::http_get(server.url() + file).status, ==, 200);
  g_assert_cmpuint(harness::http_get(server.url() + "nothing.js").status, ==, 404);
  g_assert_cmpuint(harness::http_get(server.url() + "%2e%2e/%2e%2e/etc/passwd").status, >=, 400);

  const json voices = json::parse(harness::http_get(server.url() + "api/voices").body);
  g_assert_true(voices["voices"] == json::array({"NATF2.pt", "NATM1.pt"}));
  g_assert_true(voices["default_voice"] == "NATF2.pt");
  g_assert_cmpint(voices["max_prompt"].get<int>(), ==, 1000);
  const json status = json::parse(harness::http_get(server.url() + "api/status").body);
  g_assert_cmpint(status["sessions"].get<int>(), ==, 0);
  g_assert_cmpint(status["max_sessions"].get<int>(), ==, 1);
}

void test_conversation() {
  ServerProcess server({"--max-sessions", "2"});
  Client c(server.ws_url(kChat));
  expect_handshake(c);
  g_assert_cmpint(sessions(server), ==, 1);
  stream_wav(c, 3);
  // 3 x 1.92 s of speech: about 72 frames, one page each after the two headers.
  harness::wait_until([&] { return payloads(c, kAudio).size() >= 2 + 60 || c.closed(); }, 120);
  g_assert_false(c.closed());

  const std::vector<std::string> pages = payloads(c, kAudio);
  g_assert_cmpuint(pages.size(), >=, 2 + 60);
  const Page head = parse_one_page(pages[0]);
  g_assert_cmpuint(head.flags, ==, 0x02);  // beginning of the stream
  g_assert_cmpuint(head.packets.size(), ==, 1);
  g_assert_true(head.packets[0].compare(0, 8, "OpusHead") == 0);
  g_assert_cmpuint(guint8(head.packets[0][9]), ==, 1);     // mono
  g_assert_cmpuint(le32(head.packets[0], 12), ==, 24000);  // from 24 kHz
  const Page tags = parse_one_page(pages[1]);
  g_assert_true(tags.packets.size() == 1 && tags.packets[0].compare(0, 8, "OpusTags") == 0);
  int64_t granule = 0;
  std::string ogg = pages[0] + pages[1];
  for (size_t i = 2; i < pages.size(); ++i) {
    const Page p = parse_one_page(pages[i]);
    g_assert_cmpuint(p.serial, ==, head.serial);
    g_assert_cmpuint(p.sequence, ==, i);
    g_assert_cmpuint(p.packets.size(), ==, 1);  // one packet per page ...
    const std::string &packet = p.packets[0];
    const int samples = opus_packet_get_nb_samples(reinterpret_cast<const unsigned char *>(packet.data()),
                                                   opus_int32(packet.size()), 48000);
    g_assert_cmpint(samples, ==, 3840);  // ... of 80 ms
    granule += samples;
    g_assert_cmpint(p.granule, ==, granule);
    ogg += pages[i];
  }

  const std::vector<float> pcm = harness::decode_ogg_opus(ogg);
  const double expected = (pages.size() - 2) * 1920.0;
  g_assert_cmpfloat(std::fabs(pcm.size() - expected), <, 1920);
  double energy = 0;
  for (float v : pcm) energy += double(v) * v;
  g_assert_cmpfloat(std::sqrt(energy / pcm.size()), >, 1e-4);

  const std::vector<std::string> words = payloads(c, kText);
  g_assert_cmpuint(words.size(), >, 0);
  for (const std::string &w : words) g_assert_true(g_utf8_validate(w.data(), w.size(), nullptr) && !w.empty());
  g_print("%zu pages, %zu text pieces, %.2f s decoded\n", pages.size(), words.size(), pcm.size() / 24000.0);

  c.close();
  g_assert_true(c.wait_closed(10));
  wait_sessions(server, 0);
}

void test_bad_queries() {
  ServerProcess server({"--max-prompt", "50"});
  const struct {
    const char *query, *reason;
  } cases[] = {
      {"", "missing text_prompt"},
      {"?text_prompt=hi", "missing voice_prompt"},
      {"?voice_prompt=NATF2.pt", "missing text_prompt"},
      {"?text_prompt=hi&voice_prompt=NOPE.pt", "unknown voice"},
      {"?text_prompt=hi&voice_prompt=..%2Fvoices%2FNATF2.pt", "not a voice name"},
      {"?text_prompt=hi&voice_prompt=%2Fetc%2Fpasswd", "not a voice name"},
      {"?text_prompt=hi&voice_prompt=.hidden.pt", "not a voice name"},
      {"?text_prompt=0123456789012345678901234567890123456789012345678901234&voice_prompt=NATF2.pt", "longer than 50"},
      {"?text_prompt=%ff%fe&voice_prompt=NATF2.pt", "not UTF-8"},
      {"?text_prompt=hi&voice_prompt=NATF2.pt&audio_temperature=hot", "audio_temperature"},
      {"?text_prompt=hi&voice_prompt=NATF2.pt&text_topk=0", "text_topk"},
      {"?text_prompt=hi&voice_prompt=NATF2.pt&seed=x", "seed"},
  };
  for (const auto &c : cases) {
    // As plain HTTP: the reason in the body.
    const harness::Response r = harness::http_get(server.url() + "api/chat" + c.query);
    if (r.status != 400 || r.body.find(c.reason) == std::string::npos)
      g_error("%s: %u %s", c.query, r.status, r.body.c_str());
    // As a websocket: refused with 400 before the upgrade.
    Client client(server.ws_url(std::string("/api/chat") + c.query));
    g_assert_false(client.connected());
    g_assert_cmpuint(client.status(), ==, 400);
  }
  g_assert_cmpint(sessions(server), ==, 0);
  // An empty role and the voice by its name without .pt are fine.
  Client ok(server.ws_url("/api/chat?text_prompt=&voice_prompt=NATM1&seed=7&text_temperature=0.5&audio_topk=100"));
  expect_handshake(ok);
}

void test_malformed_messages() {
  ServerProcess server({"--max-sessions", "2"});
  {
    // Empty messages, unknown kinds and empty audio are ignored, as by the
    // reference; the call goes on.
    Client c(server.ws_url(kChat));
    expect_handshake(c);
    c.send_binary("");
    c.send_binary(std::string("\x07garbage", 8));
    c.send_binary(std::string(1, char(kAudio)));
    stream_wav(c);
    harness::wait_until([&] { return payloads(c, kAudio).size() >= 12 || c.closed(); }, 60);
    g_assert_false(c.closed());
    g_assert_cmpuint(payloads(c, kAudio).size(), >=, 12);
  }
  wait_sessions(server, 0);  // calls are freed after their client goes; 2 slots
  {
    Client c(server.ws_url(kChat));
    expect_handshake(c);
    c.send_text("hello");
    expect_closed(c, 1003, "binary");
  }
  wait_sessions(server, 0);  // calls are freed after their client goes; 2 slots
  {
    // Audio that is not Ogg: no crash; the call either ends with 1007 or
    // stays silent until the client leaves.
    Client c(server.ws_url(kChat));
    expect_handshake(c);
    std::string junk(1, char(kAudio));
    for (int i = 0; i < 40000; ++i) junk.push_back(char(g_random_int_range(0, 256)));
    c.send_binary(junk);
    const std::string ogg = harness::ogg_opus_of_wav(harness::fixtures() + "/lm/user.wav");
    std::string broken = ogg.substr(0, ogg.size() / 2);
    for (size_t i = 200; i < broken.size(); i += 97) broken[i] = char(~broken[i]);
    c.send_binary(std::string(1, char(kAudio)) + broken);
    expect_closed(c, 1007, "not an Ogg stream");
  }
  wait_sessions(server, 0);  // calls are freed after their client goes; 2 slots
  {
    // Ogg, but not Opus.
    Client c(server.ws_url(kChat));
    expect_handshake(c);
    const std::string vorbis =
        harness::ogg_opus_of_wav(harness::fixtures() + "/lm/user.wav", 1, "audioconvert ! vorbisenc");
    g_assert_cmpuint(vorbis.size(), >, 100);
    c.send_binary(std::string(1, char(kAudio)) + vorbis);
    expect_closed(c, 1007, "not Opus");
    // Said first, in full.
    g_assert_true(payloads(c, kError).at(0) == "invalid Ogg/Opus audio: the Ogg stream is Vorbis, not Opus");
  }
  wait_sessions(server, 0);
  Client after(server.ws_url(kChat));
  expect_handshake(after);
  stream_wav(after);
  g_assert_cmpint(after.wait_binary(kAudio, 60), >, 0);
}

// Sends an Ogg stream with each page cut in two messages (at `cut` of its size).
void send_pages_split(Client &c, const std::string &ogg, double cut) {
  for (size_t at = 0; at < ogg.size();) {
    const size_t segments = guint8(ogg[at + 26]);
    size_t size = 27 + segments;
    for (size_t i = 0; i < segments; ++i) size += guint8(ogg[at + 27 + i]);
    const size_t first = std::max<size_t>(1, size_t(size * cut));
    c.send_binary(std::string(1, char(kAudio)) + ogg.substr(at, first));
    c.send_binary(std::string(1, char(kAudio)) + ogg.substr(at + first, size - first));
    at += size;
  }
}

// Ogg Opus as real clients write it: a browser's page rate in the OpusHead
// (44100, 96000), an 8 kHz encoder, stereo, 100 ms packets from a 24 kHz
// encoder (LiveKit's plugin), several packets a page; pages cut across
// messages. Each call is answered with the model's audio for all of it.
void test_any_ogg_opus() {
  ServerProcess server;
  const std::string wav = harness::fixtures() + "/lm/user.wav";
  const struct {
    const char *name;
    int channels, encoder_rate;
    uint32_t head_rate;
    double packet_ms;
    int per_page;
  } cases[] = {
      {"44.1 kHz page", 1, 48000, 44100, 20, 1},  {"96 kHz page", 1, 48000, 96000, 20, 1},
      {"8 kHz", 1, 8000, 8000, 20, 1},            {"stereo 44.1 kHz", 2, 48000, 44100, 20, 3},
      {"24 kHz, 100 ms packets", 1, 24000, 24000, 100, 1},
  };
  for (const auto &k : cases) {
    oggmaker::Options o;
    o.channels = k.channels;
    o.encoder_rate = k.encoder_rate;
    o.head_rate = k.head_rate;
    o.packet_ms = k.packet_ms;
    o.packets_per_page = k.per_page;
    const std::vector<float> pcm = harness::pcm_of_wav(wav, k.encoder_rate, k.channels);
    const double seconds = double(pcm.size()) / k.channels / k.encoder_rate;
    const std::string ogg = oggmaker::ogg_opus(pcm, o);
    Client c(server.ws_url(kChat));
    expect_handshake(c);
    send_pages_split(c, ogg, 0.5);
    // One 80 ms page per frame of input, after the two header pages.
    const size_t frames = size_t(seconds / 0.08) - 1;
    harness::wait_until([&] { return payloads(c, kAudio).size() >= 2 + frames || c.closed(); }, 60);
    if (c.closed() || payloads(c, kAudio).size() < 2 + frames)
      g_error("%s: %zu audio pages for %.2f s (closed %d: %u %s; %s)", k.name, payloads(c, kAudio).size(), seconds,
              c.closed(), c.close_code(), c.close_reason().c_str(),
              payloads(c, kError).empty() ? "" : payloads(c, kError)[0].c_str());
    g_print("%s: %zu audio pages, %zu text pieces for %.2f s\n", k.name, payloads(c, kAudio).size(),
            payloads(c, kText).size(), seconds);
    c.close();
    g_assert_true(c.wait_closed(10));
    wait_sessions(server, 0);
  }
}

void test_disconnects() {
  ServerProcess server({"--max-sessions", "2"});
  {
    // Gone during the prompts.
    Client c(server.ws_url(kChat));
    g_assert_true(c.connected());
    c.drop();
  }
  wait_sessions(server, 0);
  {
    // Gone in the middle of the conversation, without a close frame.
    Client c(server.ws_url(kChat));
    expect_handshake(c);
    stream_wav(c);
    g_assert_cmpint(c.wait_binary(kAudio, 60), >, 0);
    c.drop();
  }
  wait_sessions(server, 0);
  {
    // Two calls; one vanishes, the other goes on.
    Client stays(server.ws_url(kChat)), leaves(server.ws_url(kChat));
    expect_handshake(stays);
    expect_handshake(leaves);
    stream_wav(leaves);
    leaves.drop();
    stream_wav(stays, 2);
    harness::wait_until([&] { return payloads(stays, kAudio).size() >= 2 + 40 || stays.closed(); }, 60);
    g_assert_false(stays.closed());
    g_assert_cmpuint(payloads(stays, kAudio).size(), >=, 2 + 40);
    wait_sessions(server, 1);
  }
  wait_sessions(server, 0);
}

void test_busy() {
  ServerProcess server({"--max-sessions", "2"});
  Client a(server.ws_url(kChat)), b(server.ws_url(kChat));
  expect_handshake(a);
  expect_handshake(b);
  Client c(server.ws_url(kChat));
  expect_closed(c, 1013, "busy");
  g_assert_cmpuint(c.messages().size(), ==, 1);  // no handshake, the error
  g_assert_true(payloads(c, kError).at(0).find("busy: all 2 conversations are in use") == 0);
  // The browser's signalling is told the same.
  Client page(server.ws_url("/ws"));
  page.send_text(R"({"type":"start","voice_prompt":"NATF2.pt","text_prompt":"hi"})");
  expect_closed(page, 1013, "busy");
  g_assert_true(json::parse(page.messages().at(0).data)["message"].get<std::string>().find("busy") == 0);

  // Both calls work at once.
  stream_wav(a);
  stream_wav(b);
  harness::wait_until([&] { return payloads(a, kAudio).size() >= 14 && payloads(b, kAudio).size() >= 14; }, 60);
  g_assert_cmpuint(payloads(a, kAudio).size(), >=, 14);
  g_assert_cmpuint(payloads(b, kAudio).size(), >=, 14);

  a.close();
  wait_sessions(server, 1);
  Client d(server.ws_url(kChat));
  expect_handshake(d);
}

// --batch: calls step together in one batch of --max-sessions slots; a call
// with its own sampling steps alone; a slot freed by a call is the next's.
void test_batched_calls() {
  ServerProcess server({"--max-sessions", "2", "--batch"});
  Client a(server.ws_url(kChat)), b(server.ws_url(kChat));
  expect_handshake(a);
  expect_handshake(b);
  stream_wav(a);
  stream_wav(b);
  harness::wait_until([&] { return payloads(a, kAudio).size() >= 14 && payloads(b, kAudio).size() >= 14; }, 60);
  g_assert_cmpuint(payloads(a, kAudio).size(), >=, 14);
  g_assert_cmpuint(payloads(b, kAudio).size(), >=, 14);
  Client busy(server.ws_url(kChat));
  expect_closed(busy, 1013, "busy");

  a.close();
  wait_sessions(server, 1);
  Client own(server.ws_url(std::string(kChat) + "&audio_temperature=0.6"));
  expect_handshake(own);
  stream_wav(own);
  harness::wait_until([&] { return payloads(own, kAudio).size() >= 14 || own.closed(); }, 60);
  g_assert_cmpuint(payloads(own, kAudio).size(), >=, 14);
  b.close();
  own.close();
  wait_sessions(server, 0);
  Client again(server.ws_url(kChat));
  expect_handshake(again);
}

// Reads from a raw connection until the server closes it; the seconds it took.
double seconds_until_closed(const ServerProcess &server, const std::string &send) {
  const std::string url = server.url();
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  GSocketClient *client = g_socket_client_new();
  GSocketConnection *c = g_socket_client_connect_to_host(client, "127.0.0.1", guint16(port), nullptr, nullptr);
  g_assert_nonnull(c);
  GSocket *socket = g_socket_connection_get_socket(c);
  g_socket_set_timeout(socket, 30);
  if (!send.empty()) g_socket_send(socket, send.data(), send.size(), nullptr, nullptr);
  const gint64 begin = g_get_monotonic_time();
  char buffer[4096];
  while (g_socket_receive(socket, buffer, sizeof buffer, nullptr, nullptr) > 0) {
  }
  const double took = (g_get_monotonic_time() - begin) / 1e6;
  g_object_unref(c);
  g_object_unref(client);
  return took;
}

void test_timeouts() {
  ServerProcess server({"--idle-timeout", "4", "--handshake-timeout", "2", "--max-sessions", "3"});
  // A connection that says nothing, or not all of its request.
  g_assert_cmpfloat(seconds_until_closed(server, ""), <, 5);
  g_assert_cmpfloat(seconds_until_closed(server, "GET / HTTP/1.1\r\nHost: x\r\n"), <, 5);
  Client quiet(server.ws_url(kChat));
  expect_handshake(quiet);
  const gint64 begin = g_get_monotonic_time();
  expect_closed(quiet, 1001, "idle");
  g_assert_cmpfloat((g_get_monotonic_time() - begin) / 1e6, >, 3);  // not the request's timeout
  g_assert_true(payloads(quiet, kError).at(0).find("idle") == 0);
  // A browser page that never starts its call.
  Client page(server.ws_url("/ws"));
  expect_closed(page, 1008, "did not connect");
  // One that starts but never answers the offer.
  Client mute(server.ws_url("/ws"));
  mute.send_text(R"({"type":"start"})");
  expect_closed(mute, 1008, "did not connect");
  g_assert_true(mute.messages().size() >= 1);
  wait_sessions(server, 0);
}

void test_call_limit() {
  ServerProcess server({"--max-call", "2"});
  Client c(server.ws_url(kChat));
  expect_handshake(c);
  stream_wav(c);
  expect_closed(c, 1001, "time limit");
  wait_sessions(server, 0);
}

void test_signalling_errors() {
  ServerProcess server({"--max-prompt", "20"});
  const struct {
    const char *message;
    gushort code;
    const char *reason;
  } cases[] = {
      {"not json", 1003, "JSON"},
      {R"({"no":"type"})", 1003, "JSON"},
      {R"({"type":"dance"})", 1003, "unexpected"},
      {R"({"type":"answer","sdp":"v=0"})", 1008, "before the call"},
      {R"({"type":"start","voice_prompt":"../NATF2.pt"})", 1008, "not a voice name"},
      {R"({"type":"start","voice_prompt":"NOPE"})", 1008, "unknown voice"},
      {R"({"type":"start","text_prompt":"a prompt well over twenty characters"})", 1008, "longer than 20"},
  };
  for (const auto &c : cases) {
    Client page(server.ws_url("/ws"));
    g_assert_true(page.connected());
    page.send_text(c.message);
    expect_closed(page, c.code, c.reason);
    g_assert_true(json::parse(page.messages().at(0).data)["type"] == "error");
  }
  Client binary(server.ws_url("/ws"));
  binary.send_binary("\x01\x02");
  expect_closed(binary, 1003, "JSON");
  // Other sites' pages may not start calls.
  Client foreign(server.ws_url("/ws"), "http://example.com");
  g_assert_false(foreign.connected());
  g_assert_cmpuint(foreign.status(), ==, 403);
  const std::string own = server.url().substr(0, server.url().size() - 1);
  Client same(server.ws_url("/ws"), own);
  g_assert_true(same.connected());
  wait_sessions(server, 0);
}

// The model's "falling behind real time" warnings reach the page: with no
// compute budget (--latency 0) every live step is late.
void test_warnings_reach_the_page() {
  ServerProcess server({"--latency", "0"});
  Client page(server.ws_url("/ws"));
  page.send_text(R"({"type":"start","voice_prompt":"NATF2.pt","text_prompt":"hi"})");
  std::string warning;
  harness::wait_until(
      [&] {
        for (const Client::Message &m : page.messages()) {
          const json j = json::parse(m.data, nullptr, false);
          if (j.is_object() && j.value("type", "") == "warning") warning = j.value("message", "");
        }
        return !warning.empty() || page.closed();
      },
      30);
  if (warning.find("Falling behind real time") != 0)
    g_error("no warning on the page (closed %d: %u %s)", page.closed(), page.close_code(), page.close_reason().c_str());
  g_assert_false(page.closed());  // the call goes on
  std::string out;
  std::vector<std::string> args = harness::model_options();
  args.insert(args.end(), {"--http", "--latency", "-5"});
  g_assert_cmpint(harness::run_server(args, &out), ==, 2);
}

void test_https() {
  gchar *dir = g_dir_make_tmp("pp-ssl-XXXXXX", nullptr);
  for (int round = 0; round < 2; ++round) {
    ServerProcess server({"--ssl", dir}, true);
    g_assert_true(g_str_has_prefix(server.url().c_str(), "https://"));
    const bool made = server.output().find("self-signed") != std::string::npos;
    g_assert_true(made == (round == 0));  // made once, then reused
    g_assert_cmpuint(harness::http_get(server.url() + "api/voices").status, ==, 200);
    Client c(server.ws_url(kChat));
    expect_handshake(c);
  }
  for (const char *name : {"cert.pem", "key.pem"}) {
    gchar *path = g_build_filename(dir, name, nullptr);
    g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
    g_unlink(path);
    g_free(path);
  }
  g_rmdir(dir);
  g_free(dir);
}

// The status of a request sent as written (a client library would resolve
// the dots first).
guint raw_status(const ServerProcess &server, const std::string &path) {
  const std::string url = server.url();
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  GSocketClient *client = g_socket_client_new();
  GSocketConnection *c = g_socket_client_connect_to_host(client, "127.0.0.1", guint16(port), nullptr, nullptr);
  g_assert_nonnull(c);
  GSocket *socket = g_socket_connection_get_socket(c);
  g_socket_set_timeout(socket, 10);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  g_socket_send(socket, request.data(), request.size(), nullptr, nullptr);
  std::string answer;
  char buffer[4096];
  gssize n;
  while ((n = g_socket_receive(socket, buffer, sizeof buffer, nullptr, nullptr)) > 0) answer.append(buffer, n);
  g_object_unref(c);
  g_object_unref(client);
  guint status = 0;
  if (sscanf(answer.c_str(), "HTTP/1.%*d %u", &status) != 1) g_error("no HTTP answer to %s", path.c_str());
  return status;
}

void write_file(const std::string &path, const std::string &content) {
  gchar *dir = g_path_get_dirname(path.c_str());
  g_mkdir_with_parents(dir, 0700);
  g_free(dir);
  g_assert_true(g_file_set_contents(path.c_str(), content.data(), content.size(), nullptr));
}

// --static DIR: a web client's tree at /, with nested folders, MIME types
// (.wasm included), conditional GETs, and nothing outside DIR reachable.
void test_static_files() {
  gchar *tmp = g_dir_make_tmp("pp-static-XXXXXX", nullptr);
  const std::string base = tmp, root = base + "/dist";
  g_free(tmp);
  const std::string wasm("\0asm\x01\0\0\0", 8);
  const struct {
    const char *path, *type;
    std::string content;
  } files[] = {
      {"index.html", "text/html", "<!doctype html><title>client</title>"},
      {"assets/index-4f2a.js", "text/javascript", "console.log(1);"},
      {"assets/index-4f2a.js.map", "application/json", "{}"},
      {"assets/index-77.css", "text/css", "body{}"},
      {"assets/decoderWorker.min.wasm", "application/wasm", wasm},
      {"assets/images/logo.svg", "image/svg+xml", "<svg/>"},
      {"data/config.json", "application/json", "{\"a\":1}"},
      {"docs/guide/index.html", "text/html", "guide"},
      {"assets/blob.bin", "application/octet-stream", "xx"},
  };
  for (const auto &f : files) write_file(root + "/" + f.path, f.content);
  write_file(root + "/.env", "SECRET=1");
  write_file(base + "/secret.txt", "secret");
  g_assert_cmpint(symlink((base + "/secret.txt").c_str(), (root + "/leak.txt").c_str()), ==, 0);
  g_assert_cmpint(symlink(base.c_str(), (root + "/up").c_str()), ==, 0);
  g_assert_cmpint(symlink("assets/images/logo.svg", (root + "/logo.svg").c_str()), ==, 0);  // inside: fine

  ServerProcess server({"--static", root});
  for (const auto &f : files) {
    const harness::Response r = harness::http_get(server.url() + f.path);
    if (r.status != 200 || r.body != f.content || r.header("Content-Type").find(f.type) != 0)
      g_error("%s: %u %s", f.path, r.status, r.header("Content-Type").c_str());
  }
  harness::Response index = harness::http_get(server.url());
  g_assert_cmpuint(index.status, ==, 200);
  g_assert_true(index.body == files[0].content);
  g_assert_true(harness::http_get(server.url() + "docs/guide/").body == "guide");
  g_assert_true(harness::http_get(server.url() + "docs/guide").body == "guide");  // redirected to the slash
  g_assert_cmpuint(raw_status(server, "/docs/guide"), ==, 301);
  g_assert_true(harness::http_get(server.url() + "logo.svg").body == "<svg/>");
  g_assert_cmpuint(harness::http_get(server.url() + "assets/nothing.js").status, ==, 404);
  g_assert_cmpuint(harness::http_get(server.url() + "data/").status, ==, 404);  // no index, no listing

  // Conditional GETs.
  const harness::Response js = harness::http_get(server.url() + "assets/index-4f2a.js");
  g_assert_false(js.header("ETag").empty());
  g_assert_false(js.header("Last-Modified").empty());
  g_assert_cmpuint(harness::http_get(server.url() + "assets/index-4f2a.js", {{"If-None-Match", js.header("ETag")}}).status,
                   ==, 304);
  g_assert_cmpuint(
      harness::http_get(server.url() + "assets/index-4f2a.js", {{"If-Modified-Since", js.header("Last-Modified")}}).status,
      ==, 304);
  g_assert_cmpuint(harness::http_get(server.url() + "assets/index-4f2a.js", {{"If-None-Match", "\"other\""}}).status,
                   ==, 200);
  g_assert_cmpuint(harness::http_get(server.url() + "assets/index-4f2a.js",
                                     {{"If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT"}}).status,
                   ==, 200);

  // Nothing outside the tree.
  for (const char *path : {"/../secret.txt", "/%2e%2e/secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt",
                           "/assets/..%2f..%2fsecret.txt", "/%2E%2E%2Fsecret.txt", "//etc/passwd", "/.env",
                           "/assets/%00.js", "/%2fetc%2fpasswd", "/..\\secret.txt"}) {
    const guint status = raw_status(server, path);
    if (status != 404 && status != 403 && status != 400) g_error("%s: %u", path, status);
  }
  g_assert_cmpuint(raw_status(server, "/leak.txt"), ==, 403);
  g_assert_cmpuint(raw_status(server, "/up/secret.txt"), ==, 403);
  // The API is still there.
  g_assert_cmpuint(harness::http_get(server.url() + "api/voices").status, ==, 200);

  std::string out;
  std::vector<std::string> args = harness::model_options();
  args.insert(args.end(), {"--http", "--static", base + "/secret.txt"});
  g_assert_cmpint(harness::run_server(args, &out), ==, 2);
  g_assert_true(out.find("is not a directory") != std::string::npos);
  gchar *argv[] = {g_strdup("rm"), g_strdup("-rf"), g_strdup(base.c_str()), nullptr};
  g_spawn_sync(nullptr, argv, nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  for (gchar *a : argv) g_free(a);
}

void test_command_line() {
  std::string out;
  const std::vector<std::string> model = harness::model_options();
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = model;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  // No model at all is the demo model (server/demo-model); part of one is an error.
  g_assert_cmpint(harness::run_server({"--http", "--mimi-weights", "mimi.safetensors"}, &out), ==, 2);
  g_assert_true(out.find("name the model") != std::string::npos);
  g_assert_cmpint(harness::run_server(with({"--http", "--ssl", "x"}), &out), ==, 2);
  g_assert_cmpint(harness::run_server(with({"--http", "--voice", "../x.pt"}), &out), ==, 2);
  g_assert_cmpint(harness::run_server(with({"--http", "--max-sessions", "0"}), &out), ==, 2);
  g_assert_cmpint(harness::run_server(with({"--http", "--port", "70000"}), &out), ==, 2);
  g_assert_cmpint(harness::run_server(with({"--http", "--ice-address", "203.0.113.7"}), &out), ==, 2);
  g_assert_true(out.find("not an address of this machine") != std::string::npos);
  g_assert_cmpint(harness::run_server(with({"--http", "--ice-ports", "9-5"}), &out), ==, 2);
  g_assert_cmpint(harness::run_server(with({"--http", "--kv-cache", "int4"}), &out), ==, 2);
  g_assert_true(out.find("auto or fp8") != std::string::npos);
  g_assert_cmpint(harness::run_server(with({"--http", "--weight-format", "int4"}), &out), ==, 2);
  g_assert_true(out.find("auto, int8 or fp8") != std::string::npos);
  g_assert_cmpint(harness::run_server(with({"--http", "--mimi-dtype", "fp8"}), &out), ==, 2);
  g_assert_true(out.find("auto, float32 or bfloat16") != std::string::npos);
  g_assert_cmpint(harness::run_server(with({"--http", "--offload-layers", "-1"}), &out), ==, 2);
  g_assert_true(out.find("--offload-layers cannot be negative") != std::string::npos);
  g_assert_cmpint(harness::run_server(with({"--http", "--port", "0", "--offload-layers", "99"}), &out), ==, 1);
  g_assert_true(out.find("cannot keep 99 layers in host memory") != std::string::npos);
  // A model that does not load stops the server before it listens.
  g_assert_cmpint(harness::run_server(with({"--http", "--port", "0", "--tokenizer", "/nonexistent/tok.model"}), &out),
                  ==, 1);
  g_assert_true(out.find("nonexistent") != std::string::npos);
  g_assert_true(out.find("Listening") == std::string::npos);
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  g_test_init(&argc, &argv, nullptr);
  g_log_set_debug_enabled(FALSE);
  harness::fixtures();  // skips without them
  for (const char *element : {"personaplex", "oggdemux", "opusdec", "opusenc", "webrtcbin", "nicesrc"}) {
    GstElementFactory *f = gst_element_factory_find(element);
    if (!f) {
      g_print("skipped: GStreamer element %s not available\n", element);
      return 77;
    }
    gst_object_unref(f);
  }
  g_test_add_func("/server/http", test_http);
  g_test_add_func("/server/static-files", test_static_files);
  g_test_add_func("/server/chat/conversation", test_conversation);
  g_test_add_func("/server/chat/bad-queries", test_bad_queries);
  g_test_add_func("/server/chat/malformed", test_malformed_messages);
  g_test_add_func("/server/chat/any-ogg-opus", test_any_ogg_opus);
  g_test_add_func("/server/chat/disconnects", test_disconnects);
  g_test_add_func("/server/busy", test_busy);
  g_test_add_func("/server/batched-calls", test_batched_calls);
  g_test_add_func("/server/timeouts", test_timeouts);
  g_test_add_func("/server/call-limit", test_call_limit);
  g_test_add_func("/server/signalling-errors", test_signalling_errors);
  g_test_add_func("/server/warnings", test_warnings_reach_the_page);
  g_test_add_func("/server/https", test_https);
  g_test_add_func("/server/command-line", test_command_line);
  return g_test_run();
}
