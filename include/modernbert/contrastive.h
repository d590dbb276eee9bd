// Contrastive losses of retrieval fine-tuning (in-batch negatives): InfoNCE over single vectors and
// ColBERT MaxSim over token vectors, with their gradients.
#pragma once

#include <cstdint>
#include <vector>

#include "modernbert/model.h"

namespace modernbert {

// ---- Contrastive losses for retrieval fine-tuning (in-batch negatives) ----
// Query i's positive is document target[i]; exclude[i * Bd + j] != 0 removes document j from query
// i's softmax (another positive of the same query, so it is not a false negative). The loss is the
// mean over queries of −log softmax_j(s_ij / temperature)[target_i].
//
// Single vector (InfoNCE, sentence-transformers' MultipleNegativesRankingLoss with scale = 1/τ):
//   s_ij = cos(q_i, d_j), q [Bq, D], d [Bd, D] raw (unnormalised) vectors.
// Gradients w.r.t. the raw vectors are WRITTEN to dq [Bq, D] / dd [Bd, D] (either may be null).
double info_nce_loss(const float* q, int64_t Bq, const float* d, int64_t Bd, int64_t D,
                     const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude, double temperature,
                     float* dq, float* dd);
// Multi-vector (ColBERT MaxSim): query i has token vectors q[q_off[i] .. q_off[i+1]), document j
// d[d_off[j] .. d_off[j+1]) (rows of D floats, raw); each is L2-normalised, and
//   s_ij = Σ_{t ∈ q_i} max_{k ∈ d_j} <q̂_t, d̂_k>.
// Gradients w.r.t. the raw token vectors are WRITTEN to dq [Tq, D] / dd [Td, D] (nullable); the
// max routes the gradient to the first maximising document token (ties: lowest index).
double maxsim_contrastive_loss(const float* q, const std::vector<int64_t>& q_off, const float* d,
                               const std::vector<int64_t>& d_off, int64_t D, const std::vector<int64_t>& target,
                               const std::vector<uint8_t>& exclude, double temperature, float* dq, float* dd);

// The whole retrieval loss of one fine-tuning step from the encoder output: `batch` holds Bq
// queries then Bd = num_seqs − Bq documents, hidden = last_hidden_state [T, H].
//   embedding: mean (or CLS) pooling per sequence -> info_nce_loss
//   colbert:   P = hidden · projᵀ [T, proj_dim] (no bias) -> maxsim_contrastive_loss
// Writes d loss / d hidden [T, H] and (colbert) d loss / d proj [proj_dim, H].
struct RetrievalLoss {
  bool colbert = false;
  bool cls_pooling = false;  // embedding: CLS instead of mean pooling
  double temperature = 0.05;
  const float* proj = nullptr;  // colbert: [proj_dim, H]
  int64_t proj_dim = 0;
};
double retrieval_batch_loss(const float* hidden, const Batch& batch, int64_t H, int64_t Bq,
                            const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude,
                            const RetrievalLoss& spec, float* dhidden, float* dproj);

// retrieval_batch_loss in its two halves around the loss, for a step whose sequences are encoded
// in several micro-batches (gradient accumulation / data parallelism: the vectors of all of them
// meet in one info_nce_loss or maxsim_contrastive_loss, then each micro-batch goes back alone).
// The vectors the loss compares, from a micro-batch's last_hidden_state [T, H]:
//   embedding: the pooled vector of each sequence [num_seqs, H] (raw, unnormalised)
//   colbert:   the projected token vectors P = hidden · projᵀ [T, proj_dim]
std::vector<float> retrieval_vectors(const float* hidden, const Batch& batch, int64_t H, const RetrievalLoss& spec);
// Back from d loss / d vectors (the layout above) to d loss / d hidden [T, H] (WRITTEN) and, for
// ColBERT, d loss / d proj [proj_dim, H] (ADDED to dproj).
void retrieval_vectors_backward(const float* hidden, const Batch& batch, int64_t H, const RetrievalLoss& spec,
                                const float* dvectors, float* dhidden, float* dproj);

}  // namespace modernbert
