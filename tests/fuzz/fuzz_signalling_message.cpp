// Fuzz target: a websocket message of the page's signalling
// (pipelines/server/signalling_message.cpp) and, for a "start", the
// conversation it asks for (conversation.cpp, voices.cpp), as the server
// reads them. The voices directory is an empty one of its own.
#include <glib.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "conversation.h"
#include "scratch.h"
#include "signalling_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const ppserver::Config config = [] {
    ppserver::Config c;
    gchar *dir = g_dir_make_tmp("fuzz-voices-XXXXXX", nullptr);
    c.voices_dir = dir ? fuzz::remove_at_exit(dir) : "";
    g_free(dir);
    return c;
  }();
  const nlohmann::json m = ppserver::read_signalling_message(std::string_view(reinterpret_cast<const char *>(data), size));
  if (m.is_discarded()) return 0;
  ppserver::Conversation conversation;
  ppserver::read_conversation(config, ppserver::start_fields(m), false, &conversation);
  return 0;
}
