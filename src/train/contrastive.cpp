// Contrastive losses for retrieval fine-tuning: InfoNCE over cosine similarities (single-vector
// embeddings) and MaxSim (ColBERT), both with in-batch negatives. Forward and backward side by
// side; see include/modernbert/contrastive.h for the definitions. Sizes are small (a batch of queries
// against a batch of documents), so the cosine scores are plain double-precision loops; pooling,
// L2 normalisation, the ColBERT GEMMs and the masked softmax cross-entropy rows are kernels
// (kernels/backend.h).
#include "modernbert/contrastive.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "modernbert/error.h"

namespace modernbert {
namespace {

void check_targets(int64_t Bq, int64_t Bd, const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude,
                   double temperature, const char* what) {
  if (Bq < 1 || Bd < 1) throw Error(std::string(what) + ": needs at least one query and one document");
  if (static_cast<int64_t>(target.size()) != Bq)
    throw Error(std::string(what) + ": " + std::to_string(target.size()) + " targets for " + std::to_string(Bq) + " queries");
  if (!exclude.empty() && static_cast<int64_t>(exclude.size()) != Bq * Bd)
    throw Error(std::string(what) + ": exclusion mask must have Bq * Bd entries");
  if (!(temperature > 0)) throw Error(std::string(what) + ": temperature must be > 0");
  for (int64_t i = 0; i < Bq; ++i) {
    const int64_t t = target[static_cast<size_t>(i)];
    if (t < 0 || t >= Bd) throw Error(std::string(what) + ": target " + std::to_string(t) + " out of range");
    if (!exclude.empty() && exclude[static_cast<size_t>(i * Bd + t)])
      throw Error(std::string(what) + ": a query's target document is excluded");
  }
}

// Row-wise: loss_i = logsumexp_j(s_ij) − s_i,target over the non-excluded j, mean over rows;
// overwrites s with d loss / d s (kernels::masked_softmax_ce). s holds scores / temperature.
double softmax_ce_rows(std::vector<double>& s, int64_t Bq, int64_t Bd, const std::vector<int64_t>& target,
                       const std::vector<uint8_t>& exclude) {
  return kernels::masked_softmax_ce(s.data(), Bq, Bd, target.data(), exclude.empty() ? nullptr : exclude.data());
}

// x̂ = x / max(|x|, eps) for each of n rows of D (kernels::l2norm); keeps the norms.
void normalise_rows(const float* x, int64_t n, int64_t D, std::vector<float>& xh, std::vector<float>& norm) {
  xh.resize(static_cast<size_t>(n * D));
  norm.resize(static_cast<size_t>(n));
  kernels::l2norm(x, xh.data(), norm.data(), n, D);
}

// d x = (d x̂ − x̂ (x̂ · d x̂)) / |x| for each row (kernels::l2norm_backward); dxh (accumulated in
// double) -> dx (float, written).
void normalise_backward(const std::vector<float>& xh, const std::vector<float>& norm, const std::vector<double>& dxh,
                        int64_t n, int64_t D, float* dx) {
  std::vector<float> g(dxh.begin(), dxh.end());
  kernels::l2norm_backward(xh.data(), norm.data(), g.data(), dx, n, D);
}

}  // namespace

double info_nce_loss(const float* q, int64_t Bq, const float* d, int64_t Bd, int64_t D,
                     const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude, double temperature,
                     float* dq, float* dd) {
  check_targets(Bq, Bd, target, exclude, temperature, "info_nce_loss");
  std::vector<float> qh, dh;
  std::vector<float> qn, dn;
  normalise_rows(q, Bq, D, qh, qn);
  normalise_rows(d, Bd, D, dh, dn);
  std::vector<double> s(static_cast<size_t>(Bq * Bd));
  for (int64_t i = 0; i < Bq; ++i)
    for (int64_t j = 0; j < Bd; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < D; ++c) acc += static_cast<double>(qh[static_cast<size_t>(i * D + c)]) * dh[static_cast<size_t>(j * D + c)];
      s[static_cast<size_t>(i * Bd + j)] = acc / temperature;
    }
  const double loss = softmax_ce_rows(s, Bq, Bd, target, exclude);  // s := d loss / d (score/τ)
  if (dq) {
    std::vector<double> g(static_cast<size_t>(Bq * D), 0.0);
    for (int64_t i = 0; i < Bq; ++i)
      for (int64_t j = 0; j < Bd; ++j) {
        const double w = s[static_cast<size_t>(i * Bd + j)] / temperature;
        if (w == 0) continue;
        for (int64_t c = 0; c < D; ++c) g[static_cast<size_t>(i * D + c)] += w * dh[static_cast<size_t>(j * D + c)];
      }
    normalise_backward(qh, qn, g, Bq, D, dq);
  }
  if (dd) {
    std::vector<double> g(static_cast<size_t>(Bd * D), 0.0);
    for (int64_t i = 0; i < Bq; ++i)
      for (int64_t j = 0; j < Bd; ++j) {
        const double w = s[static_cast<size_t>(i * Bd + j)] / temperature;
        if (w == 0) continue;
        for (int64_t c = 0; c < D; ++c) g[static_cast<size_t>(j * D + c)] += w * qh[static_cast<size_t>(i * D + c)];
      }
    normalise_backward(dh, dn, g, Bd, D, dd);
  }
  return loss;
}

double maxsim_contrastive_loss(const float* q, const std::vector<int64_t>& q_off, const float* d,
                               const std::vector<int64_t>& d_off, int64_t D, const std::vector<int64_t>& target,
                               const std::vector<uint8_t>& exclude, double temperature, float* dq, float* dd) {
  if (q_off.size() < 2 || d_off.size() < 2 || q_off.front() != 0 || d_off.front() != 0)
    throw Error("maxsim_contrastive_loss: offsets must start at 0 and describe at least one sequence");
  const int64_t Bq = static_cast<int64_t>(q_off.size()) - 1, Bd = static_cast<int64_t>(d_off.size()) - 1;
  for (size_t i = 1; i < q_off.size(); ++i)
    if (q_off[i] <= q_off[i - 1]) throw Error("maxsim_contrastive_loss: every query needs at least one token");
  for (size_t i = 1; i < d_off.size(); ++i)
    if (d_off[i] <= d_off[i - 1]) throw Error("maxsim_contrastive_loss: every document needs at least one token");
  check_targets(Bq, Bd, target, exclude, temperature, "maxsim_contrastive_loss");
  const int64_t Tq = q_off.back(), Td = d_off.back();
  std::vector<float> qh, dh;
  std::vector<float> qn, dn;
  normalise_rows(q, Tq, D, qh, qn);
  normalise_rows(d, Td, D, dh, dn);
  // Token similarities [Tq, Td] in one sgemm (fp32, as ColBERT scores them), then per (query
  // token, document) the max and where it is.
  std::vector<float> sim(static_cast<size_t>(Tq * Td));
  kernels::gemm(qh.data(), dh.data(), nullptr, sim.data(), Tq, Td, D);
  std::vector<int64_t> arg(static_cast<size_t>(Tq * Bd));  // [query token, document] -> doc token
  std::vector<double> s(static_cast<size_t>(Bq * Bd), 0.0);
  for (int64_t i = 0; i < Bq; ++i)
    for (int64_t t = q_off[static_cast<size_t>(i)]; t < q_off[static_cast<size_t>(i + 1)]; ++t)
      for (int64_t j = 0; j < Bd; ++j) {
        const float* row = sim.data() + t * Td;
        int64_t best = d_off[static_cast<size_t>(j)];
        for (int64_t k = best + 1; k < d_off[static_cast<size_t>(j + 1)]; ++k)
          if (row[k] > row[best]) best = k;
        arg[static_cast<size_t>(t * Bd + j)] = best;
        s[static_cast<size_t>(i * Bd + j)] += row[best];
      }
  for (auto& v : s) v /= temperature;
  const double loss = softmax_ce_rows(s, Bq, Bd, target, exclude);
  if (dq || dd) {
    std::vector<double> gq(static_cast<size_t>(Tq * D), 0.0), gd(static_cast<size_t>(Td * D), 0.0);
    for (int64_t i = 0; i < Bq; ++i)
      for (int64_t j = 0; j < Bd; ++j) {
        const double w = s[static_cast<size_t>(i * Bd + j)] / temperature;
        if (w == 0) continue;
        for (int64_t t = q_off[static_cast<size_t>(i)]; t < q_off[static_cast<size_t>(i + 1)]; ++t) {
          const int64_t k = arg[static_cast<size_t>(t * Bd + j)];
          for (int64_t c = 0; c < D; ++c) {
            gq[static_cast<size_t>(t * D + c)] += w * dh[static_cast<size_t>(k * D + c)];
            gd[static_cast<size_t>(k * D + c)] += w * qh[static_cast<size_t>(t * D + c)];
          }
        }
      }
    if (dq) normalise_backward(qh, qn, gq, Tq, D, dq);
    if (dd) normalise_backward(dh, dn, gd, Td, D, dd);
  }
  return loss;
}

std::vector<float> retrieval_vectors(const float* hidden, const Batch& b, int64_t H, const RetrievalLoss& spec) {
  const int64_t B = b.num_seqs(), T = b.num_tokens();
  if (!spec.colbert) {
    std::vector<float> pooled(static_cast<size_t>(B * H));
    const kernels::PoolMode mode = spec.cls_pooling ? kernels::PoolMode::kCls : kernels::PoolMode::kMean;
    kernels::pool(mode, hidden, b.cu_seqlens.data(), B, H, pooled.data());
    return pooled;
  }
  const int64_t Dc = spec.proj_dim;
  if (!spec.proj || Dc < 1) throw Error("retrieval_vectors: colbert needs a projection");
  std::vector<float> P(static_cast<size_t>(T * Dc));
  kernels::gemm(hidden, spec.proj, nullptr, P.data(), T, Dc, H);  // P [T, Dc] = hidden · projᵀ
  return P;
}

void retrieval_vectors_backward(const float* hidden, const Batch& b, int64_t H, const RetrievalLoss& spec,
                                const float* dvectors, float* dhidden, float* dproj) {
  const int64_t B = b.num_seqs(), T = b.num_tokens();
  if (!dhidden) throw Error("retrieval_vectors_backward: null gradient buffer");
  if (!spec.colbert) {
    std::fill_n(dhidden, T * H, 0.0f);
    const kernels::PoolMode mode = spec.cls_pooling ? kernels::PoolMode::kCls : kernels::PoolMode::kMean;
    kernels::pool_backward(mode, dvectors, b.cu_seqlens.data(), B, H, dhidden);  // adds into the zeros
    return;
  }
  const int64_t Dc = spec.proj_dim;
  if (!spec.proj || Dc < 1) throw Error("retrieval_vectors_backward: colbert needs a projection");
  if (!dproj) throw Error("retrieval_vectors_backward: null projection gradient buffer");
  // d proj [Dc, H] += dPᵀ · hidden;  d hidden [T, H] = dP · proj
  kernels::matmul_tn_acc(dvectors, hidden, dproj, T, Dc, H);
  kernels::matmul_nn(dvectors, spec.proj, dhidden, T, H, Dc, /*accumulate=*/false);
}

double retrieval_batch_loss(const float* hidden, const Batch& b, int64_t H, int64_t Bq,
                            const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude,
                            const RetrievalLoss& spec, float* dhidden, float* dproj) {
  const int64_t B = b.num_seqs(), Bd = B - Bq;
  if (Bq < 1 || Bd < 1) throw Error("retrieval_batch_loss: the batch needs queries and documents");
  if (!dhidden) throw Error("retrieval_batch_loss: null gradient buffer");
  if (spec.colbert && !dproj) throw Error("retrieval_batch_loss: null projection gradient buffer");
  const std::vector<float> v = retrieval_vectors(hidden, b, H, spec);
  std::vector<float> dv(v.size());
  double loss = 0;
  if (!spec.colbert) {
    loss = info_nce_loss(v.data(), Bq, v.data() + Bq * H, Bd, H, target, exclude, spec.temperature, dv.data(),
                         dv.data() + Bq * H);
  } else {
    const int64_t Dc = spec.proj_dim, Tq = b.cu_seqlens[static_cast<size_t>(Bq)];
    std::vector<int64_t> qoff(b.cu_seqlens.begin(), b.cu_seqlens.begin() + Bq + 1), doff;
    for (int64_t k = Bq; k <= B; ++k) doff.push_back(b.cu_seqlens[static_cast<size_t>(k)] - Tq);
    loss = maxsim_contrastive_loss(v.data(), qoff, v.data() + Tq * Dc, doff, Dc, target, exclude, spec.temperature,
                                   dv.data(), dv.data() + Tq * Dc);
    std::fill_n(dproj, Dc * H, 0.0f);
  }
  retrieval_vectors_backward(hidden, b, H, spec, dv.data(), dhidden, dproj);
  return loss;
}

}  // namespace modernbert
