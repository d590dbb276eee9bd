// Inference use cases on top of the encoder (spec §4.4–4.6): fill-mask, sentence embeddings
// (pooling, Dense, normalisation, Matryoshka truncation), ColBERT per-token vectors with MaxSim,
// classification scores. Each function works on one unpadded batch and its hidden states.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tokenizer.h"

namespace modernbert {

struct MaskPrediction {
  int32_t token;
  float score;  // softmax probability
};

// For every row in `rows` (token indices into the batch), the top-k predictions of the MLM head.
std::vector<std::vector<MaskPrediction>> fill_mask(const Encoder& enc, const float* hidden, int64_t T,
                                                   const std::vector<int64_t>& rows, int64_t top_k);

enum class EmbedPooling { kCls, kMean, kMax };
EmbedPooling parse_embed_pooling(const std::string& s);  // "cls" | "mean" | "max" (ST names too)

struct EmbedOptions {
  EmbedPooling pooling = EmbedPooling::kMean;
  bool normalize = false;
  int64_t dim = 0;  // Matryoshka: keep the first `dim` dimensions (then re-normalise); 0 = all
  const SentenceTransformersInfo* dense = nullptr;  // apply its Dense projection when set
};
// Sentence embeddings [B, D] for the batch.
std::vector<float> sentence_embeddings(const Batch& batch, const float* hidden, int64_t H, const EmbedOptions& o,
                                       int64_t* out_dim);

// ColBERT: per-token vectors [T, D] = L2norm(Dense(h_t)) (Dense from the PyLate module when present,
// else identity).
std::vector<float> colbert_vectors(const float* hidden, int64_t T, int64_t H, const SentenceTransformersInfo* dense,
                                   int64_t* out_dim);
// MaxSim: sum over query tokens of the max dot product with any document token.
float maxsim(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim);

// Scores from logits by problem type: softmax (single label), sigmoid (multi label), identity (regression).
std::vector<float> logits_to_scores(const float* logits, int64_t n, ProblemType p);

}  // namespace modernbert
