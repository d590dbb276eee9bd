// Training options that are enums past the parsers (CLI flags, JSON configs). The strings are
// what configs, run identities and logs keep writing; parse_* give the errors for other values.
#pragma once

#include <string>

namespace modernbert {

enum class OptimizerType { kStableAdamW, kAdamW };
enum class DecayShape { kOneMinusSqrt, kLinear };  // LR decay: 1 − sqrt(frac) | 1 − frac

const char* to_string(OptimizerType t);  // "stableadamw" | "adamw"
const char* to_string(DecayShape s);     // "1-sqrt" | "linear"

// Throw modernbert::Error "optimizer: type must be stableadamw or adamw, got 'S'" /
// "schedule: decay_shape must be 1-sqrt or linear, got 'S'".
OptimizerType parse_optimizer_type(const std::string& s);
DecayShape parse_decay_shape(const std::string& s);

}  // namespace modernbert
