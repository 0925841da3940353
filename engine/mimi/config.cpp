#include "mimi/config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/bounded_json.h"

namespace personaplex::mimi {
namespace {

// Configs nest a few levels; deeper ones are damage.
constexpr int kMaxConfigDepth = 16;

using json = nlohmann::json;

// Reads one JSON object, naming "source: key 'section.key'" in every error and
// rejecting keys it was not asked about (an ignored key could silently change
// the architecture).
class Section {
 public:
  Section(const json &j, std::string source, std::string path)
      : j_(j), source_(std::move(source)), path_(std::move(path)) {
    if (!j_.is_object()) fail("", "must be an object");
  }

  [[noreturn]] void fail(const std::string &key, const std::string &what) const {
    std::string name = path_.empty() ? key : key.empty() ? path_ : path_ + "." + key;
    throw Error(source_ + ": key '" + name + "' " + what);
  }

  const json *find(const std::string &key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  void integer(const std::string &key, int64_t &out, int64_t min) {
    if (const json *v = find(key)) {
      if (!v->is_number_integer()) fail(key, "must be an integer, got " + v->dump());
      int64_t x = v->get<int64_t>();
      if (x < min) fail(key, "must be >= " + std::to_string(min) + ", got " + std::to_string(x));
      out = x;
    }
  }

  void number(const std::string &key, double &out, bool positive) {
    if (const json *v = find(key)) {
      if (!v->is_number()) fail(key, "must be a number, got " + v->dump());
      double x = v->get<double>();
      if (!std::isfinite(x) || (positive && x <= 0)) fail(key, "must be a positive number, got " + v->dump());
      out = x;
    }
  }

  void boolean(const std::string &key, bool &out) {
    if (const json *v = find(key)) {
      if (!v->is_boolean()) fail(key, "must be true or false, got " + v->dump());
      out = v->get<bool>();
    }
  }

  // A string that must be one of `allowed`.
  std::string choice(const std::string &key, const std::string &dflt,
                     const std::vector<std::string> &allowed) {
    const json *v = find(key);
    if (!v) return dflt;
    if (!v->is_string()) fail(key, "must be a string, got " + v->dump());
    std::string s = v->get<std::string>();
    for (const auto &a : allowed)
      if (s == a) return s;
    std::string list;
    for (const auto &a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(key, "has unsupported value '" + s + "' (supported: " + list + ")");
  }

  // A key the engine accepts only with one value (the one it implements).
  void require(const std::string &key, const json &value) {
    if (const json *v = find(key))
      if (*v != value) fail(key, "has unsupported value " + v->dump() + " (supported: " + value.dump() + ")");
  }

  // Training-only settings that do not change inference.
  void ignore(const std::string &key) { seen_.insert(key); }

  Section sub(const std::string &key) {
    const json *v = find(key);
    static const json empty = json::object();
    return Section(v ? *v : empty, source_, path_.empty() ? key : path_ + "." + key);
  }

  void no_unknown_keys() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail(it.key(), "is unknown");
  }

 private:
  const json &j_;
  std::string source_, path_;
  std::set<std::string> seen_;
};

void read_seanet(Section s, SeanetConfig &c) {
  s.integer("channels", c.channels, 1);
  s.integer("dimension", c.dimension, 1);
  s.integer("n_filters", c.n_filters, 1);
  s.integer("n_residual_layers", c.n_residual_layers, 0);
  s.integer("kernel_size", c.kernel_size, 1);
  s.integer("residual_kernel_size", c.residual_kernel_size, 1);
  s.integer("last_kernel_size", c.last_kernel_size, 1);
  s.integer("dilation_base", c.dilation_base, 1);
  s.integer("compress", c.compress, 1);
  s.boolean("true_skip", c.true_skip);
  if (const json *r = s.find("ratios")) {
    if (!r->is_array() || r->empty()) s.fail("ratios", "must be a non-empty list of integers");
    c.ratios.clear();
    for (const auto &x : *r) {
      if (!x.is_number_integer() || x.get<int64_t>() < 1)
        s.fail("ratios", "must hold integers >= 1, got " + r->dump());
      c.ratios.push_back(x.get<int64_t>());
    }
  }
  s.choice("activation", "ELU", {"ELU"});
  {
    Section act = s.sub("activation_params");
    act.number("alpha", c.elu_alpha, false);
    act.no_unknown_keys();
  }
  std::string pad = s.choice("pad_mode", "constant", {"constant", "replicate"});
  c.pad_mode = pad == "replicate" ? PadMode::Replicate : PadMode::Constant;
  s.require("causal", true);
  // Weight norm is folded into the stored weights; any other norm has other tensors.
  s.choice("norm", "none", {"none"});
  s.require("trim_right_ratio", 1.0);
  s.require("final_activation", nullptr);
  s.ignore("disable_norm_outer_blocks");  // only selects where a norm would go
  s.ignore("norm_params");
  s.no_unknown_keys();
}

void read_transformer(Section s, LatentTransformerConfig &c) {
  nn::TransformerConfig &t = c.core;
  s.integer("d_model", t.d_model, 1);
  s.integer("num_heads", t.num_heads, 1);
  s.integer("num_layers", t.num_layers, 0);
  s.integer("dim_feedforward", t.dim_feedforward, 1);
  s.integer("context", t.context, 1);
  s.number("max_period", t.max_period, true);
  s.integer("input_dimension", c.input_dimension, 1);
  if (const json *o = s.find("output_dimensions")) {
    if (!o->is_array() || o->size() != 1 || !(*o)[0].is_number_integer() || (*o)[0].get<int64_t>() < 1)
      s.fail("output_dimensions", "must be a list of one positive integer, got " + o->dump());
    c.output_dimension = (*o)[0].get<int64_t>();
  }
  t.rope = s.choice("positional_embedding", "rope", {"rope", "none"}) == "rope";
  t.norm = nn::TransformerConfig::parse_norm(
      s.choice("norm", "layer_norm", {"layer_norm", "rms_norm", "rms_norm_f32"}));
  t.mlp = nn::TransformerConfig::parse_gating(s.choice("gating", "none", {"none", "silu"}));
  if (const json *ls = s.find("layer_scale")) {
    if (!ls->is_null() && !ls->is_number()) s.fail("layer_scale", "must be null or a number, got " + ls->dump());
    t.layer_scale = !ls->is_null();
  }
  s.require("causal", true);
  s.require("conv_layout", true);
  s.no_unknown_keys();
}

void read_quantizer(Section s, QuantizerConfig &c) {
  s.integer("dimension", c.dimension, 1);
  s.integer("n_q", c.n_q, 2);
  s.integer("n_q_semantic", c.n_q_semantic, 1);
  s.integer("bins", c.bins, 1);
  s.integer("input_dimension", c.input_dimension, 1);
  s.integer("output_dimension", c.output_dimension, 1);
  for (const char *k : {"decay", "threshold_usage_ratio", "replaced_usage_ratio", "q_dropout",
                        "no_quantization_rate", "no_quantization_mode"})
    s.ignore(k);
  s.no_unknown_keys();
}

}  // namespace

MimiConfig::MimiConfig() {
  auto &t = transformer.core;
  t.d_model = 512;
  t.num_heads = 8;
  t.num_layers = 8;
  t.dim_feedforward = 2048;
  t.context = 250;
  t.max_period = 10000;
  t.rope = true;
  t.norm = nn::Norm::LayerNorm;
  t.mlp = nn::Mlp::Gelu;
  t.layer_scale = true;
}

int64_t SeanetConfig::hop_length() const {
  int64_t hop = 1;
  for (int64_t r : ratios) hop *= r;
  return hop;
}

int64_t MimiConfig::frame_size() const {
  return static_cast<int64_t>(std::llround(double(sample_rate) / frame_rate));
}

int64_t MimiConfig::resample_stride() const { return frame_size() / seanet.hop_length(); }

MimiConfig MimiConfig::from_json_string(const std::string &text, const std::string &source) {
  std::string problem;
  const json j = parse_bounded_json(text, kMaxConfigDepth, &problem);
  if (j.is_discarded()) {
    throw Error(source + ": not valid JSON: " + problem);
  }
  MimiConfig c;
  Section top(j, source, "");
  read_seanet(top.sub("seanet"), c.seanet);
  read_transformer(top.sub("transformer"), c.transformer);
  read_quantizer(top.sub("quantizer"), c.quantizer);
  top.integer("sample_rate", c.sample_rate, 1);
  top.number("frame_rate", c.frame_rate, true);
  top.integer("num_codebooks", c.num_codebooks, 1);
  top.choice("resample_method", "conv", {"conv"});
  top.boolean("upsample_channel_wise_bug", c.upsample_channel_wise);
  top.no_unknown_keys();
  c.validate(source);
  return c;
}

MimiConfig MimiConfig::from_json_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the Mimi config");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_string(ss.str(), path);
}

void MimiConfig::validate(const std::string &source) const {
  auto fail = [&](const std::string &key, const std::string &what) {
    throw Error(source + ": key '" + key + "' " + what);
  };
  auto n = [](int64_t x) { return std::to_string(x); };
  const auto &t = transformer.core;
  if (t.d_model % t.num_heads != 0)
    fail("transformer.d_model", n(t.d_model) + " is not a multiple of num_heads " + n(t.num_heads));
  if (t.rope && (t.d_model / t.num_heads) % 2 != 0)
    fail("transformer.num_heads", "gives an odd head dimension, which RoPE cannot rotate");
  if (transformer.input_dimension != seanet.dimension)
    fail("transformer.input_dimension", n(transformer.input_dimension) +
                                            " differs from seanet.dimension " + n(seanet.dimension));
  if (transformer.output_dimension != seanet.dimension)
    fail("transformer.output_dimensions", n(transformer.output_dimension) +
                                              " differs from seanet.dimension " + n(seanet.dimension));
  if (quantizer.input_dimension != seanet.dimension)
    fail("quantizer.input_dimension", n(quantizer.input_dimension) + " differs from seanet.dimension " +
                                          n(seanet.dimension));
  if (quantizer.output_dimension != seanet.dimension)
    fail("quantizer.output_dimension", n(quantizer.output_dimension) +
                                           " differs from seanet.dimension " + n(seanet.dimension));
  if (quantizer.n_q <= quantizer.n_q_semantic)
    fail("quantizer.n_q", n(quantizer.n_q) + " must exceed the semantic levels " + n(quantizer.n_q_semantic));
  if (num_codebooks < quantizer.n_q_semantic || num_codebooks > quantizer.n_q)
    fail("num_codebooks", n(num_codebooks) + " is outside [" + n(quantizer.n_q_semantic) + ", " +
                              n(quantizer.n_q) + "]");
  if (seanet.n_filters < seanet.compress)
    fail("seanet.compress", n(seanet.compress) + " leaves no residual channels for n_filters " +
                                n(seanet.n_filters));
  const double frame = double(sample_rate) / frame_rate;
  if (frame != std::floor(frame))
    fail("frame_rate", "does not divide sample_rate into whole samples per frame");
  const int64_t hop = seanet.hop_length();
  if (frame_size() % hop != 0)
    fail("seanet.ratios", "hop " + n(hop) + " does not divide the frame of " + n(frame_size()) + " samples");
}

std::string MimiConfig::to_json() const {
  const auto &t = transformer.core;
  auto norm_name = [](nn::Norm x) {
    return x == nn::Norm::LayerNorm ? "layer_norm" : x == nn::Norm::RmsNorm ? "rms_norm" : "rms_norm_f32";
  };
  json j;
  j["seanet"] = {{"channels", seanet.channels},
                 {"dimension", seanet.dimension},
                 {"causal", true},
                 {"n_filters", seanet.n_filters},
                 {"n_residual_layers", seanet.n_residual_layers},
                 {"activation", "ELU"},
                 {"activation_params", {{"alpha", seanet.elu_alpha}}},
                 {"compress", seanet.compress},
                 {"dilation_base", seanet.dilation_base},
                 {"disable_norm_outer_blocks", 0},
                 {"kernel_size", seanet.kernel_size},
                 {"residual_kernel_size", seanet.residual_kernel_size},
                 {"last_kernel_size", seanet.last_kernel_size},
                 {"norm", "none"},
                 {"pad_mode", seanet.pad_mode == PadMode::Replicate ? "replicate" : "constant"},
                 {"ratios", seanet.ratios},
                 {"true_skip", seanet.true_skip}};
  j["transformer"] = {{"d_model", t.d_model},
                      {"num_heads", t.num_heads},
                      {"num_layers", t.num_layers},
                      {"causal", true},
                      {"layer_scale", t.layer_scale ? json(0.01) : json(nullptr)},
                      {"context", t.context},
                      {"conv_layout", true},
                      {"max_period", t.max_period},
                      {"gating", t.mlp == nn::Mlp::Gelu ? "none" : "silu"},
                      {"norm", norm_name(t.norm)},
                      {"positional_embedding", t.rope ? "rope" : "none"},
                      {"dim_feedforward", t.dim_feedforward},
                      {"input_dimension", transformer.input_dimension},
                      {"output_dimensions", {transformer.output_dimension}}};
  j["quantizer"] = {{"dimension", quantizer.dimension},
                    {"n_q", quantizer.n_q},
                    {"n_q_semantic", quantizer.n_q_semantic},
                    {"bins", quantizer.bins},
                    {"input_dimension", quantizer.input_dimension},
                    {"output_dimension", quantizer.output_dimension}};
  j["sample_rate"] = sample_rate;
  j["frame_rate"] = frame_rate;
  j["num_codebooks"] = num_codebooks;
  j["resample_method"] = "conv";
  j["upsample_channel_wise_bug"] = upsample_channel_wise;
  return j.dump(1);
}

}  // namespace personaplex::mimi
