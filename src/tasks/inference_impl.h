// The state behind modernbert::Model (inference.h), shared by src/tasks/inference*.cpp.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "modernbert/batching.h"
#include "modernbert/inference.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"

namespace modernbert {

struct Model::Impl {
  LoadedModel model;
  std::optional<Tokenizer> tok;  // from DIR/tokenizer.json when present
  std::unique_ptr<Encoder> enc;  // keeps model.weights by reference
  ModelOptions opts;
  ModelInfo info;
  bool cleanup = false;            // tokenizer_config.json's clean_up_tokenization_spaces
  std::optional<int32_t> mask_id;  // the tokenizer's [MASK]
  std::mutex mu;                   // serialises the compute calls (the encoder's arena is not re-entrant)

  explicit Impl(LoadedModel m) : model(std::move(m)) {}

  // Token ids of each input (inputs_to_ids with ModelOptions' truncate / lossy_utf8 / max_position),
  // its failures as InputError with the input's index. An empty text is InputError kEmpty.
  std::vector<std::vector<int32_t>> to_ids(const std::vector<SequenceInput>& in, const std::string& prefix,
                                           std::vector<Encoding>* encs = nullptr) const;
  std::vector<std::vector<int32_t>> texts_to_ids(const std::vector<std::string>& texts, const std::string& prefix,
                                                 std::vector<Encoding>* encs = nullptr) const;
  // The ids embed_tokens runs: texts with TokenParams::prefix. The one place where a PyLate
  // model's query / document treatment (its prefix token, query expansion) plugs in.
  std::vector<std::vector<int32_t>> token_input_ids(const std::vector<std::string>& texts, const TokenParams& p) const;
  // for_each_batch over seqs, at most batch_size (> 0) sequences per forward; fn gets the index of
  // the batch's first sequence in seqs.
  void run(const std::vector<std::vector<int32_t>>& seqs, int64_t batch_size,
           const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn);

  // The tasks without the lock (Model's methods lock, then call these; rerank combines them).
  Matrix embed(const std::vector<std::string>& texts, const EmbedParams& p);
  TokenVectors embed_tokens(const std::vector<std::string>& texts, const TokenParams& p);
  std::vector<Classification> classify(const std::vector<std::string>& texts, const std::vector<std::string>& pairs);
};

}  // namespace modernbert
