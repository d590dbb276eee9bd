// The kernel activation for a config.json activation: one mapping shared by the inference encoder,
// its heads and the training model.
#pragma once

#include "kernels/backend.h"
#include "modernbert/config.h"
#include "modernbert/error.h"

namespace modernbert {

inline kernels::Act to_kernel_act(Activation a) {
  switch (a) {
    case Activation::kGelu: return kernels::Act::kGelu;
    case Activation::kGeluTanh: return kernels::Act::kGeluTanh;
    case Activation::kRelu: return kernels::Act::kRelu;
    case Activation::kSilu: return kernels::Act::kSilu;
  }
  throw Error("unknown activation");
}

}  // namespace modernbert
