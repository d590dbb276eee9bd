#include "kernels/cpu/profile.h"

#include <cstdlib>

namespace modernbert::kernels::prof {

Totals& totals() {
  static Totals t;
  return t;
}

bool enabled() {
  static const bool on = std::getenv("MODERNBERT_PROFILE") != nullptr;
  return on;
}

}  // namespace modernbert::kernels::prof
