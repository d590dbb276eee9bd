// Exact nearest-neighbour search for retrieval evaluation: top-k of a score row, inner-product search
// over single vectors and MaxSim (ColBERT) search over multi-vector documents.
#pragma once

#include <cstdint>
#include <vector>

namespace modernbert {

// Indices of the k largest scores, best first; ties broken by the lower index.
std::vector<int64_t> top_k_indices(const float* scores, int64_t n, int64_t k);

// Exact inner-product search: scores = Q [nq, dim] · C [nc, dim]ᵀ (cblas_sgemm, blocked over
// queries), top-k per query.
std::vector<std::vector<int64_t>> exact_search(const float* queries, int64_t nq, const float* corpus, int64_t nc,
                                               int64_t dim, int64_t k);

// Multi-vector (ColBERT) search: query q has vectors q_vecs[q_off[q] .. q_off[q+1]), document d
// d_vecs[d_off[d] .. d_off[d+1]) (rows of `dim` floats). Score = MaxSim (as modernbert::maxsim),
// computed exactly with sgemm over blocks of document tokens. Returns top-k per query; `scores`
// (optional) receives the full [nq, nd] score matrix.
std::vector<std::vector<int64_t>> maxsim_search(const std::vector<float>& q_vecs, const std::vector<int64_t>& q_off,
                                                const std::vector<float>& d_vecs, const std::vector<int64_t>& d_off,
                                                int64_t dim, int64_t k, std::vector<float>* scores = nullptr);

}  // namespace modernbert
