#include "serving/step_grid.h"

namespace personaplex::serving {

StepGrid::Time StepGrid::deadline(Time first) {
  const Time gathered = first + gather_;
  if (!on()) return gathered;
  if (!origin_) origin_ = gathered;
  // The first grid line at or after `gathered`.
  const auto since = gathered - *origin_;
  const auto lines = (since.count() + period_.count() - 1) / period_.count();
  return *origin_ + lines * period_;
}

}  // namespace personaplex::serving
