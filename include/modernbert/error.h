// Errors: every failure the library reports is a modernbert::Error whose message names the file,
// field or tensor at fault. Nothing in the library calls exit() or aborts on bad input.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace modernbert {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The failure of one item of a batch call (e.g. Tokenizer::encode_batch): `index` into the batch
// and the message without the "text K: " prefix, so that a caller can name the item's file and
// line instead of its position in the batch.
class BatchItemError : public Error {
 public:
  BatchItemError(std::size_t index, const std::string& detail)
      : Error("text " + std::to_string(index) + ": " + detail), index_(index), detail_(detail) {}
  std::size_t index() const { return index_; }
  const std::string& detail() const { return detail_; }

 private:
  std::size_t index_;
  std::string detail_;
};

}  // namespace modernbert
