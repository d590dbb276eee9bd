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

// ---- How the inference commands, the server and modernbert::Model (inference.h) resolve a model's
// knobs: one definition each, so that they cannot drift apart. ----

struct Classification;  // inference.h
struct TokenLabel;      // inference.h
struct MaskResult;      // inference.h

// Sentence-embedding pooling of a model: sentence-transformers' 1_Pooling mode, else config.json's
// classifier_pooling (cls | mean).
EmbedPooling model_embed_pooling(const LoadedModel& m);
// The prompt text to prepend: the prompt `name` (an Error naming it when the model has no such
// prompt), or with `name` null the model's default prompt (none when it names no prompt).
std::string prompt_text(const SentenceTransformersInfo& st, const std::string* name);
// Whether decoded text gets transformers' clean_up_tokenization: tokenizer_config.json's
// clean_up_tokenization_spaces (false without the file, as the tokenizers library never cleans up).
bool tokenizer_cleans_up(const std::string& dir);

// Label i's name: config.json's id2label, else "LABEL_i" (as transformers names them).
std::string label_name(const ModelConfig& c, int64_t i);
// The problem type `classify` applies: config.json's; unset means regression for one label and
// single-label classification otherwise (transformers' rule).
ProblemType resolve_problem_type(ProblemType configured, int64_t num_labels);
// One input's classification from its logits [L] under problem type p (resolved).
Classification classification_from_logits(const float* logits, int64_t L, ProblemType p);
// A cross-encoder's relevance score from one pair's logits [n]: sigmoid of the one logit (as
// sentence-transformers' CrossEncoder and TEI's /rerank), else the softmax probability of the last
// label. Used by Model::rerank and the server's /rerank so that they agree.
float relevance_score(const float* logits, int64_t n);

// Token classification of one sequence: logits [n, L] of its n tokens (ids), the tokens that are
// not special (by enc's special_tokens_mask; every token when enc is null, i.e. ids input) with
// their argmax label and its softmax probability; `token` decoded alone with tok (empty when null),
// offsets from enc (0 when null).
std::vector<TokenLabel> token_labels(const float* logits, int64_t L, const int32_t* ids, int64_t n, const Encoding* enc,
                                     const Tokenizer* tok);

// Fill-mask over one batch (hidden [T, H] from the encoder): every [MASK] (mask_id) of each
// sequence with its top_k fills, token_str and sequence decoded as Hugging Face does (sequence
// with special tokens skipped; clean_up_tokenization when `cleanup`). Result s belongs to the
// batch's sequence s (empty when it has no [MASK]).
std::vector<std::vector<MaskResult>> fill_mask_batch(const Encoder& enc, const Tokenizer& tok, bool cleanup,
                                                     const Batch& b, const float* hidden, int32_t mask_id,
                                                     int64_t top_k);

}  // namespace modernbert
