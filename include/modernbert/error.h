// Errors: every failure the library reports is a modernbert::Error whose message names the file,
// field or tensor at fault. Nothing in the library calls exit() or aborts on bad input.
#pragma once

#include <stdexcept>
#include <string>

namespace modernbert {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace modernbert
