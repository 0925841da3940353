// JSON from files and the network, parsed with a nesting limit: a deeper
// document is refused while it is parsed, before it is built (nlohmann's
// parser is iterative, but dump(), comparisons and copies recurse once per
// level, and each level costs memory). Header-only: the server uses it too.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace personaplex {

// The document in `text`; on bad JSON or nesting deeper than `max_depth`,
// a discarded value, with the reason in `*error`.
inline nlohmann::json parse_bounded_json(std::string_view text, int max_depth, std::string *error) {
  struct TooDeep {};
  try {
    return nlohmann::json::parse(
        text.begin(), text.end(), [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json &) {
          if (depth > max_depth) throw TooDeep{};
          return true;
        });
  } catch (const TooDeep &) {
    *error = "nested deeper than " + std::to_string(max_depth) + " levels";
  } catch (const nlohmann::json::exception &e) {
    *error = e.what();
  }
  return nlohmann::json(nlohmann::json::value_t::discarded);
}

}  // namespace personaplex
