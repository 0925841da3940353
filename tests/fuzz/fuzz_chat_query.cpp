// Fuzz target: the query string of the reference protocol's /api/chat
// (?text_prompt=..&voice_prompt=..), decoded as libsoup does for the server
// and read as a conversation (pipelines/server/conversation.cpp, voices.cpp).
#include <libsoup/soup.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "conversation.h"
#include "scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const ppserver::Config config = [] {
    ppserver::Config c;
    gchar *dir = g_dir_make_tmp("fuzz-voices-XXXXXX", nullptr);
    c.voices_dir = dir ? fuzz::remove_at_exit(dir) : "";
    g_free(dir);
    return c;
  }();
  const std::string query(reinterpret_cast<const char *>(data), size);
  GHashTable *table = soup_form_decode(query.c_str());
  std::map<std::string, std::string> fields;
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init(&it, table);
  while (g_hash_table_iter_next(&it, &key, &value))
    fields[static_cast<const char *>(key)] = value ? static_cast<const char *>(value) : "";
  g_hash_table_unref(table);
  ppserver::Conversation conversation;
  ppserver::read_conversation(config, fields, true, &conversation);
  return 0;
}
