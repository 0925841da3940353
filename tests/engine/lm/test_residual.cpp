// The pre-norm residual stream: each addition, and the norm of the sum for
// the next sublayer, on the CPU and on CUDA (one fused launch there where
// built, libtorch's addition and rms_norm elsewhere).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lm/ops.h"
#include "lm/residual.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

void check_stream(const std::vector<at::TensorOptions> &options) {
  at::manual_seed(21);
  for (const at::TensorOptions &o : options) {
    SCOPED_TRACE(o.device().str() + " " + std::string(at::toString(o.dtype().toScalarType())));
    const at::TensorOptions f32 = o.dtype(at::kFloat);
    const at::Tensor x = at::randn({2, 1, 64}, o), u1 = at::randn({2, 1, 64}, o), u2 = at::randn({2, 1, 64}, o);
    const at::Tensor a1 = at::rand({1, 1, 64}, f32) + 0.5, a2 = at::rand({1, 1, 64}, f32) + 0.5;
    const double tol = o.dtype() == at::kBFloat16 ? 2e-2 : 1e-5;
    Residual r(x, a1, true);
    EXPECT_TRUE(at::allclose(r.normed(), rms_norm(x, a1, true), tol, tol));
    r.add(u1, a2);
    const at::Tensor sum = x + u1;
    EXPECT_TRUE(at::equal(r.x(), sum));  // rounded as the addition in x's dtype rounds
    EXPECT_TRUE(at::allclose(r.normed().to(at::kFloat), rms_norm(sum, a2, true).to(at::kFloat), tol, tol));
    // The last sublayer: the sum, nothing normed.
    r.add(u2, at::Tensor());
    EXPECT_TRUE(at::equal(r.x(), sum + u2));
    EXPECT_FALSE(r.normed().defined());
  }
}

}  // namespace

TEST(Residual, AddsThenNormsForTheNextSublayer) { check_stream({at::TensorOptions().dtype(at::kFloat)}); }

TEST(Residual, CudaAddsThenNormsForTheNextSublayer) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  check_stream({at::TensorOptions(at::kCUDA).dtype(at::kFloat), at::TensorOptions(at::kCUDA).dtype(at::kBFloat16)});
}

TEST(Residual, NormsInTheModelsDtypeWithoutF32) {
  // "rms_norm" (not _f32): eps 1e-5, computed in x's dtype; fp32 x on every device.
  const at::Tensor x = at::randn({3, 1, 32}), u = at::randn({3, 1, 32}), a = at::rand({1, 1, 32}) + 0.5;
  Residual r(x, a, false);
  r.add(u, a);
  EXPECT_TRUE(at::allclose(r.normed(), rms_norm(x + u, a, false), 1e-5, 1e-6));
}
