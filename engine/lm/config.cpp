#include "lm/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/bounded_json.h"

namespace personaplex::lm {
namespace {

// Configs nest a few levels; deeper ones are damage.
constexpr int kMaxConfigDepth = 16;

using json = nlohmann::json;

template <typename T>
void read(const json &j, const char *key, T &out, const std::string &origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception &e) {
    throw Error(origin + ": config key '" + key + "' has the wrong type: " + e.what());
  }
}

// Integers must be written as integers that fit: nlohmann converts 1e308
// to int64_t with undefined behaviour.
int64_t as_integer(const json &v, const char *key, const std::string &origin) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
    throw Error(origin + ": config key '" + key + "' must be an integer, got " + v.dump().substr(0, 40));
  return v.get<int64_t>();
}

void read(const json &j, const char *key, int64_t &out, const std::string &origin) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) out = as_integer(*it, key, origin);
}

void read(const json &j, const char *key, std::vector<int64_t> &out, const std::string &origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_array()) throw Error(origin + ": config key '" + key + "' must be a list of integers");
  out.clear();
  for (const json &v : *it) out.push_back(as_integer(v, key, origin));
}

// Options the engine implements only one way: the value it expects.
void expect(const json &j, const char *key, const json &supported, const std::string &origin) {
  auto it = j.find(key);
  if (it == j.end() || *it == supported) return;
  throw Error(origin + ": config '" + key + "' = " + it->dump() + " is not supported (only " +
              supported.dump() + ")");
}

}  // namespace

LmConfig LmConfig::from_json_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the LM config");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_string(ss.str(), path);
}

LmConfig LmConfig::from_json_string(const std::string &text, const std::string &origin) {
  std::string problem;
  const json j = parse_bounded_json(text, kMaxConfigDepth, &problem);
  if (j.is_discarded()) {
    throw Error(origin + ": not valid JSON: " + problem);
  }
  if (!j.is_object()) throw Error(origin + ": the LM config must be a JSON object");
  LmConfig c;
  read(j, "dim", c.dim, origin);
  read(j, "num_heads", c.num_heads, origin);
  read(j, "num_layers", c.num_layers, origin);
  read(j, "hidden_scale", c.hidden_scale, origin);
  read(j, "context", c.context, origin);
  read(j, "max_period", c.max_period, origin);
  read(j, "norm", c.norm, origin);
  read(j, "gating", c.gating, origin);
  read(j, "text_card", c.text_card, origin);
  if (j.contains("existing_text_padding_id") && j["existing_text_padding_id"].is_null())
    c.existing_text_padding_id = -1;
  else
    read(j, "existing_text_padding_id", c.existing_text_padding_id, origin);
  read(j, "card", c.card, origin);
  read(j, "n_q", c.n_q, origin);
  read(j, "dep_q", c.dep_q, origin);
  read(j, "delays", c.delays, origin);
  read(j, "depformer_dim", c.depformer_dim, origin);
  read(j, "depformer_num_heads", c.depformer_num_heads, origin);
  read(j, "depformer_num_layers", c.depformer_num_layers, origin);
  c.depformer_dim_feedforward = int64_t(c.hidden_scale * double(c.depformer_dim));
  read(j, "depformer_dim_feedforward", c.depformer_dim_feedforward, origin);
  read(j, "depformer_multi_linear", c.depformer_multi_linear, origin);
  read(j, "depformer_weights_per_step", c.depformer_weights_per_step, origin);

  expect(j, "causal", true, origin);
  expect(j, "depformer_causal", true, origin);
  expect(j, "layer_scale", nullptr, origin);
  expect(j, "depformer_layer_scale", nullptr, origin);
  expect(j, "positional_embedding", "rope", origin);
  expect(j, "depformer_pos_emb", "none", origin);
  expect(j, "depformer_gating", "silu", origin);
  expect(j, "norm_emb", false, origin);
  expect(j, "bias_proj", false, origin);
  expect(j, "depformer_weights_per_step_schedule", nullptr, origin);
  // depformer_context / depformer_max_period: the reference overrides the
  // depformer's context (its cache holds one slot per step) and it has no
  // positional embedding, so both are read by nothing.
  c.validate(origin);
  return c;
}

void LmConfig::validate(const std::string &origin) const {
  auto fail = [&](const std::string &why) { throw Error(origin + ": bad LM config: " + why); };
  auto positive = [&](const char *name, int64_t v) {
    if (v <= 0) fail(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  positive("dim", dim);
  positive("num_heads", num_heads);
  positive("num_layers", num_layers);
  positive("context", context);
  positive("text_card", text_card);
  positive("card", card);
  positive("depformer_dim", depformer_dim);
  positive("depformer_num_heads", depformer_num_heads);
  positive("depformer_num_layers", depformer_num_layers);
  positive("depformer_dim_feedforward", depformer_dim_feedforward);
  if (dim % num_heads || (dim / num_heads) % 2)
    fail("dim " + std::to_string(dim) + " does not split into " + std::to_string(num_heads) +
         " heads of even size");
  if (depformer_dim % depformer_num_heads)
    fail("depformer_dim " + std::to_string(depformer_dim) + " is not a multiple of " +
         std::to_string(depformer_num_heads) + " heads");
  if (n_q != 2 * kAudioCodebooks)
    fail("n_q must be the agent's and the user's " + std::to_string(kAudioCodebooks) +
         " codebooks, got " + std::to_string(n_q));
  if (dep_q < kAudioCodebooks || dep_q > n_q)
    fail("dep_q must be between " + std::to_string(kAudioCodebooks) + " and n_q, got " +
         std::to_string(dep_q));
  if (int64_t(delays.size()) != num_streams())
    fail(std::to_string(delays.size()) + " delays for " + std::to_string(num_streams()) +
         " streams");
  for (int64_t d : delays)
    if (d < 0) fail("negative delay");
  if (existing_text_padding_id >= text_card)
    fail("existing_text_padding_id is outside the text vocabulary");
  if (!depformer_weights_per_step) fail("only depformer_weights_per_step = true is supported");
  nn::TransformerConfig::parse_norm(norm);
  if (gating != "silu") fail("only gating 'silu' is supported, got '" + gating + "'");
}

int64_t LmConfig::max_delay() const { return *std::max_element(delays.begin(), delays.end()); }

nn::TransformerConfig LmConfig::temporal() const {
  nn::TransformerConfig t;
  t.d_model = dim;
  t.num_heads = num_heads;
  t.num_layers = num_layers;
  t.dim_feedforward = int64_t(hidden_scale * double(dim));
  t.context = context;
  t.max_period = max_period;
  t.rope = true;
  t.norm = nn::TransformerConfig::parse_norm(norm);
  t.mlp = nn::Mlp::SiluGated;
  t.layer_scale = false;
  return t;
}

int64_t LmConfig::depformer_hidden() const {
  return depformer_dim_feedforward == 4 * depformer_dim ? (21 * depformer_dim) / 8
                                                        : (2 * depformer_dim_feedforward) / 3;
}

}  // namespace personaplex::lm
