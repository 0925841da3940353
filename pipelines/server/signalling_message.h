// The page's signalling messages: JSON objects with a string "type", read
// with a nesting limit (a message nested 100,000 deep once overflowed the
// stack in the recursive dump of its fields), and the fields of a "start"
// message as read_conversation takes them.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>

namespace ppserver {

// The message, or a discarded value when `text` is not such an object.
nlohmann::json read_signalling_message(std::string_view text);

// Every field but "type" and nulls, as a string (numbers as written).
std::map<std::string, std::string> start_fields(const nlohmann::json &message);

}  // namespace ppserver
