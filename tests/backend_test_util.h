// Kernel tests parameterised by backend (llama.cpp's test-backend-ops pattern): every test of a
// BackendTest fixture runs once per non-reference backend in test_backends(), with that backend
// installed as kernels::backend() for the test's duration, so `kernels::op(...)` calls the backend
// under test while `kernels::ref::op(...)` is the scalar reference it is compared against. A new
// backend is added to test_backends() and inherits every test and tolerance.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/backend.h"

namespace mbtest {

// The backends compared against ref_backend() (every backend but the reference).
inline std::vector<const modernbert::kernels::Backend*> test_backends() {
  return {&modernbert::kernels::cpu_backend()};
}
// Those plus the reference itself: for tests against independent references (finite differences,
// float64 formulas, PyTorch values), which the reference backend must pass too.
inline std::vector<const modernbert::kernels::Backend*> test_backends_and_ref() {
  auto v = test_backends();
  v.push_back(&modernbert::kernels::ref_backend());
  return v;
}

class BackendTest : public ::testing::TestWithParam<const modernbert::kernels::Backend*> {
 protected:
  void SetUp() override { modernbert::kernels::set_backend(*GetParam()); }
  void TearDown() override { modernbert::kernels::set_backend(modernbert::kernels::cpu_backend()); }
};

struct BackendName {
  std::string operator()(const ::testing::TestParamInfo<const modernbert::kernels::Backend*>& info) const {
    return info.param->name;
  }
};

}  // namespace mbtest

// Declares fixture `Suite` (a BackendTest) and runs its TEST_Ps over every backend.
#define MB_BACKEND_SUITE(Suite)                  \
  class Suite : public ::mbtest::BackendTest {}; \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::ValuesIn(::mbtest::test_backends()), ::mbtest::BackendName())
