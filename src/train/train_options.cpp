// String forms of the training option enums (train_options.h).
#include "modernbert/train_options.h"

#include "modernbert/error.h"

namespace modernbert {

const char* to_string(OptimizerType t) { return t == OptimizerType::kAdamW ? "adamw" : "stableadamw"; }
const char* to_string(DecayShape s) { return s == DecayShape::kLinear ? "linear" : "1-sqrt"; }

OptimizerType parse_optimizer_type(const std::string& s) {
  if (s == "stableadamw") return OptimizerType::kStableAdamW;
  if (s == "adamw") return OptimizerType::kAdamW;
  throw Error("optimizer: type must be stableadamw or adamw, got '" + s + "'");
}

DecayShape parse_decay_shape(const std::string& s) {
  if (s == "1-sqrt") return DecayShape::kOneMinusSqrt;
  if (s == "linear") return DecayShape::kLinear;
  throw Error("schedule: decay_shape must be 1-sqrt or linear, got '" + s + "'");
}

}  // namespace modernbert
