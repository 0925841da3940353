#include "lm/kv_format.h"

#include <cmath>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace personaplex::lm {
namespace {

// The value of e4m3 code c (sign, 4 exponent bits of bias 7, 3 mantissa
// bits; no infinities; 0x7f and 0xff are NaN and never produced here).
float e4m3_value(int c) {
  const int exponent = (c >> 3) & 15, mantissa = c & 7;
  const float magnitude = exponent == 0 ? std::ldexp(float(mantissa) / 8.0f, -6)
                                        : std::ldexp(1.0f + float(mantissa) / 8.0f, exponent - 7);
  return (c & 0x80) ? -magnitude : magnitude;
}

struct Tables {
  at::Tensor values;     // fp32 [256]: every code's value (NaN codes as 0)
  at::Tensor midpoints;  // fp32 [126]: between consecutive positive values
};

const Tables &cpu_tables() {
  static const Tables tables = [] {
    std::vector<float> values(256), midpoints(126);
    for (int c = 0; c < 256; ++c) values[c] = (c & 0x7f) == 0x7f ? 0.0f : e4m3_value(c);
    // Positive codes 0x00..0x7e are increasing: rounding to the nearest is
    // finding the interval between midpoints.
    for (int c = 0; c < 126; ++c) midpoints[c] = 0.5f * (values[c] + values[c + 1]);
    return Tables{at::tensor(values), at::tensor(midpoints)};
  }();
  return tables;
}

// The tables on `device`, copied there once per device.
Tables tables_on(const at::Device &device) {
  if (device.is_cpu()) return cpu_tables();
  static std::mutex mutex;
  static std::vector<std::pair<at::Device, Tables>> copies;
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto &[d, t] : copies)
    if (d == device) return t;
  const Tables &cpu = cpu_tables();
  copies.push_back({device, Tables{cpu.values.to(device), cpu.midpoints.to(device)}});
  return copies.back().second;
}

}  // namespace

KvFormat parse_kv_format(const std::string &name) {
  if (name == "auto" || name == "bf16" || name == "model") return KvFormat::kModelDtype;
  if (name == "fp8") return KvFormat::kFp8;
  throw Error("unknown KV cache format '" + name + "' (expected auto or fp8; bf16 and model mean auto: the model's dtype)");
}

std::string kv_format_name(KvFormat format) { return format == KvFormat::kFp8 ? "fp8" : "auto"; }

Fp8Vectors fp8_encode(const at::Tensor &x) {
  const Tables t = tables_on(x.device());
  at::Tensor xf = x.to(at::kFloat).contiguous();
  at::Tensor scales = std::get<0>(xf.abs().max(-1)).div_(kE4m3Max);
  at::Tensor divisor = at::where(scales > 0, scales, at::ones_like(scales)).unsqueeze(-1);
  at::Tensor scaled = xf / divisor;  // |scaled| <= 448
  at::Tensor codes = at::bucketize(scaled.abs(), t.midpoints);
  codes = at::where(scaled < 0, codes + 0x80, codes);
  return {codes.to(at::kByte), scales};
}

void prepare_fp8_codec(const at::Device &device) { tables_on(device); }

at::Tensor fp8_decode(const at::Tensor &bytes, const at::Tensor &scales, at::ScalarType dtype) {
  const Tables t = tables_on(bytes.device());
  at::Tensor values = t.values.index_select(0, bytes.reshape({-1}).to(at::kLong)).view(bytes.sizes());
  return (values * scales.unsqueeze(-1)).to(dtype);
}

}  // namespace personaplex::lm
