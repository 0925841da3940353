#include "signalling_message.h"

#include "io/bounded_json.h"

namespace ppserver {
namespace {

using json = nlohmann::json;

// Signalling messages are flat objects; ICE candidates nest one level.
constexpr int kMaxDepth = 8;

std::string field_as_string(const json &value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<long long>());
  return value.dump();
}

}  // namespace

json read_signalling_message(std::string_view text) {
  std::string problem;
  json m = personaplex::parse_bounded_json(text, kMaxDepth, &problem);
  if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) return json(json::value_t::discarded);
  return m;
}

std::map<std::string, std::string> start_fields(const json &message) {
  std::map<std::string, std::string> fields;
  for (auto it = message.begin(); it != message.end(); ++it)
    if (it.key() != "type" && !it.value().is_null()) fields[it.key()] = field_as_string(it.value());
  return fields;
}

}  // namespace ppserver
