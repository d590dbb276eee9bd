// Metric functions of include/modernbert/metrics.h and search.h: classification (accuracy, F1, MCC), correlation,
// multi-label F1, seqeval-style entity F1, ranking metrics and exact (multi-vector) search.

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <string_view>

#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/metrics.h"
#include "modernbert/search.h"

namespace modernbert {

namespace {
double safe_div(double a, double b) { return b > 0 ? a / b : 0.0; }
double f1_of(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

// ---- classification ----------------------------------------------------------------------------

double matthews_corrcoef(const std::vector<int64_t>& C, int64_t K) {
  if (static_cast<int64_t>(C.size()) != K * K) throw Error("matthews_corrcoef: confusion matrix is not K×K");
  std::vector<double> t(static_cast<size_t>(K), 0.0), p(static_cast<size_t>(K), 0.0);
  double c = 0, s = 0;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      double v = static_cast<double>(C[static_cast<size_t>(i * K + j)]);
      t[static_cast<size_t>(i)] += v;
      p[static_cast<size_t>(j)] += v;
      s += v;
      if (i == j) c += v;
    }
  double tp = 0, pp = 0, tt = 0;
  for (int64_t k = 0; k < K; ++k) {
    tp += t[static_cast<size_t>(k)] * p[static_cast<size_t>(k)];
    pp += p[static_cast<size_t>(k)] * p[static_cast<size_t>(k)];
    tt += t[static_cast<size_t>(k)] * t[static_cast<size_t>(k)];
  }
  double den = (s * s - pp) * (s * s - tt);
  if (den <= 0) return 0.0;
  return (c * s - tp) / std::sqrt(den);
}

ClassificationMetrics classification_metrics(const std::vector<int64_t>& gold, const std::vector<int64_t>& pred,
                                             int64_t K) {
  if (gold.size() != pred.size()) throw Error("classification_metrics: gold and predictions differ in length");
  if (gold.empty()) throw Error("classification_metrics: no examples");
  if (K <= 0) throw Error("classification_metrics: num_classes must be positive");
  ClassificationMetrics m;
  m.n = static_cast<int64_t>(gold.size());
  m.num_classes = K;
  m.confusion.assign(static_cast<size_t>(K * K), 0);
  int64_t correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    if (gold[i] < 0 || gold[i] >= K || pred[i] < 0 || pred[i] >= K)
      throw Error("classification_metrics: label out of range [0, " + std::to_string(K) + ") at example " + std::to_string(i));
    ++m.confusion[static_cast<size_t>(gold[i] * K + pred[i])];
    correct += gold[i] == pred[i];
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(m.n);
  m.per_class.resize(static_cast<size_t>(K));
  double f1_sum = 0;
  int64_t present = 0;
  for (int64_t k = 0; k < K; ++k) {
    ClassMetrics& c = m.per_class[static_cast<size_t>(k)];
    int64_t tp = m.confusion[static_cast<size_t>(k * K + k)];
    for (int64_t j = 0; j < K; ++j) {
      c.support += m.confusion[static_cast<size_t>(k * K + j)];
      c.predicted += m.confusion[static_cast<size_t>(j * K + k)];
    }
    c.precision = safe_div(static_cast<double>(tp), static_cast<double>(c.predicted));
    c.recall = safe_div(static_cast<double>(tp), static_cast<double>(c.support));
    c.f1 = f1_of(c.precision, c.recall);
    if (c.support > 0 || c.predicted > 0) {
      f1_sum += c.f1;
      ++present;
    }
  }
  m.macro_f1 = present ? f1_sum / static_cast<double>(present) : 0.0;
  m.mcc = matthews_corrcoef(m.confusion, K);
  return m;
}

// ---- correlation -------------------------------------------------------------------------------

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) throw Error("pearson: inputs differ in length");
  const size_t n = x.size();
  if (n < 2) return kNaN;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0 || syy <= 0) return kNaN;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  const size_t n = x.size();
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(n);
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j + 1 < n && x[idx[j + 1]] == x[idx[i]]) ++j;
    double avg = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2.0;  // ranks i+1 .. j+1
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) throw Error("spearman: inputs differ in length");
  return pearson(average_ranks(x), average_ranks(y));
}

// ---- multi-label -------------------------------------------------------------------------------

MultiLabelMetrics multilabel_metrics(const std::vector<uint8_t>& gold, const std::vector<uint8_t>& pred, int64_t L) {
  if (L <= 0) throw Error("multilabel_metrics: num_labels must be positive");
  if (gold.size() != pred.size() || gold.size() % static_cast<size_t>(L) != 0)
    throw Error("multilabel_metrics: gold/predictions must both be [n, num_labels]");
  if (gold.empty()) throw Error("multilabel_metrics: no examples");
  MultiLabelMetrics m;
  m.num_labels = L;
  m.n = static_cast<int64_t>(gold.size()) / L;
  std::vector<int64_t> tp(static_cast<size_t>(L)), fp(static_cast<size_t>(L)), fn(static_cast<size_t>(L));
  int64_t exact = 0, wrong = 0;
  for (int64_t i = 0; i < m.n; ++i) {
    bool all = true;
    for (int64_t l = 0; l < L; ++l) {
      const size_t k = static_cast<size_t>(i * L + l);
      const bool g = gold[k] != 0, p = pred[k] != 0;
      tp[static_cast<size_t>(l)] += g && p;
      fp[static_cast<size_t>(l)] += !g && p;
      fn[static_cast<size_t>(l)] += g && !p;
      if (g != p) {
        all = false;
        ++wrong;
      }
    }
    exact += all;
  }
  int64_t TP = 0, FP = 0, FN = 0;
  double f1_sum = 0;
  m.per_label.resize(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    const size_t s = static_cast<size_t>(l);
    TP += tp[s];
    FP += fp[s];
    FN += fn[s];
    ClassMetrics& c = m.per_label[s];
    c.support = tp[s] + fn[s];
    c.predicted = tp[s] + fp[s];
    c.precision = safe_div(static_cast<double>(tp[s]), static_cast<double>(c.predicted));
    c.recall = safe_div(static_cast<double>(tp[s]), static_cast<double>(c.support));
    c.f1 = f1_of(c.precision, c.recall);
    f1_sum += c.f1;
  }
  m.micro_precision = safe_div(static_cast<double>(TP), static_cast<double>(TP + FP));
  m.micro_recall = safe_div(static_cast<double>(TP), static_cast<double>(TP + FN));
  m.micro_f1 = f1_of(m.micro_precision, m.micro_recall);
  m.macro_f1 = f1_sum / static_cast<double>(L);
  m.subset_accuracy = static_cast<double>(exact) / static_cast<double>(m.n);
  m.hamming_loss = static_cast<double>(wrong) / static_cast<double>(m.n * L);
  return m;
}

// ---- entities (seqeval default mode) -----------------------------------------------------------

bool EntitySpan::operator<(const EntitySpan& o) const {
  if (begin != o.begin) return begin < o.begin;
  if (end != o.end) return end < o.end;
  return type < o.type;
}

namespace {
// seqeval.metrics.sequence_labeling.get_entities (suffix=False): tag = first character,
// type = the text after the first '-' ('_' when empty).
void split_tag(const std::string& chunk, char& tag, std::string& type) {
  tag = chunk.empty() ? 'O' : chunk[0];
  // Python: chunk[1:].split('-', maxsplit=1)[-1]
  const std::string_view rest = chunk.size() > 1 ? std::string_view(chunk).substr(1) : std::string_view();
  const size_t dash = rest.find('-');
  const std::string_view t = dash == std::string_view::npos ? rest : rest.substr(dash + 1);
  type.assign(t.data(), t.size());
  if (type.empty()) type.assign(1, '_');
}
bool end_of_chunk(char prev_tag, char tag, const std::string& prev_type, const std::string& type) {
  if (prev_tag == 'E' || prev_tag == 'S') return true;
  if ((prev_tag == 'B' || prev_tag == 'I') && (tag == 'B' || tag == 'S' || tag == 'O')) return true;
  if (prev_tag != 'O' && prev_tag != '.' && prev_type != type) return true;
  return false;
}
bool start_of_chunk(char prev_tag, char tag, const std::string& prev_type, const std::string& type) {
  if (tag == 'B' || tag == 'S') return true;
  if ((prev_tag == 'E' || prev_tag == 'S' || prev_tag == 'O') && (tag == 'E' || tag == 'I')) return true;
  if (tag != 'O' && tag != '.' && prev_type != type) return true;
  return false;
}
}  // namespace

std::vector<EntitySpan> extract_entities(const std::vector<std::string>& tags) {
  std::vector<EntitySpan> out;
  char prev_tag = 'O';
  std::string prev_type;
  int64_t begin = 0;
  const int64_t n = static_cast<int64_t>(tags.size());
  for (int64_t i = 0; i <= n; ++i) {
    char tag;
    std::string type;
    split_tag(i < n ? tags[static_cast<size_t>(i)] : std::string("O"), tag, type);
    if (end_of_chunk(prev_tag, tag, prev_type, type)) out.push_back({prev_type, begin, i - 1});
    if (start_of_chunk(prev_tag, tag, prev_type, type)) begin = i;
    prev_tag = tag;
    prev_type = type;
  }
  return out;
}

EntityMetrics entity_metrics(const std::vector<std::vector<std::string>>& gold,
                             const std::vector<std::vector<std::string>>& pred) {
  if (gold.size() != pred.size()) throw Error("entity_metrics: gold and predictions differ in the number of sentences");
  if (gold.empty()) throw Error("entity_metrics: no sentences");
  EntityMetrics m;
  m.sentences = static_cast<int64_t>(gold.size());
  int64_t correct_tags = 0;
  std::map<std::string, std::array<int64_t, 3>> counts;  // type -> gold, pred, correct
  for (size_t s = 0; s < gold.size(); ++s) {
    if (gold[s].size() != pred[s].size())
      throw Error("entity_metrics: sentence " + std::to_string(s) + " has " + std::to_string(gold[s].size()) +
                  " gold tags but " + std::to_string(pred[s].size()) + " predicted");
    for (size_t t = 0; t < gold[s].size(); ++t) correct_tags += gold[s][t] == pred[s][t];
    m.tokens += static_cast<int64_t>(gold[s].size());
    auto g = extract_entities(gold[s]);
    auto p = extract_entities(pred[s]);
    std::set<EntitySpan> gs(g.begin(), g.end());
    for (const auto& e : g) ++counts[e.type][0];
    for (const auto& e : p) {
      ++counts[e.type][1];
      if (gs.count(e)) ++counts[e.type][2];
    }
  }
  m.token_accuracy = m.tokens ? static_cast<double>(correct_tags) / static_cast<double>(m.tokens) : 0.0;
  double f1_sum = 0;
  for (const auto& [type, c] : counts) {
    m.gold_entities += c[0];
    m.predicted_entities += c[1];
    m.correct_entities += c[2];
    ClassMetrics cm;
    cm.support = c[0];
    cm.predicted = c[1];
    cm.precision = safe_div(static_cast<double>(c[2]), static_cast<double>(c[1]));
    cm.recall = safe_div(static_cast<double>(c[2]), static_cast<double>(c[0]));
    cm.f1 = f1_of(cm.precision, cm.recall);
    f1_sum += cm.f1;
    m.per_type[type] = cm;
  }
  m.precision = safe_div(static_cast<double>(m.correct_entities), static_cast<double>(m.predicted_entities));
  m.recall = safe_div(static_cast<double>(m.correct_entities), static_cast<double>(m.gold_entities));
  m.f1 = f1_of(m.precision, m.recall);
  m.macro_f1 = counts.empty() ? 0.0 : f1_sum / static_cast<double>(counts.size());
  return m;
}

// ---- ranking -----------------------------------------------------------------------------------

namespace {
bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }
void check_relevant(const std::vector<int64_t>& relevant, const char* fn) {
  if (relevant.empty()) throw Error(std::string(fn) + ": a query needs at least one relevant document");
}
}  // namespace

double ndcg_at_k(const std::vector<int64_t>& ranking, const std::vector<int64_t>& relevant, int64_t k) {
  check_relevant(relevant, "ndcg_at_k");
  double dcg = 0, idcg = 0;
  const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(ranking.size()));
  for (int64_t i = 0; i < n; ++i)
    if (contains(relevant, ranking[static_cast<size_t>(i)])) dcg += 1.0 / std::log2(static_cast<double>(i) + 2.0);
  std::set<int64_t> distinct(relevant.begin(), relevant.end());
  const int64_t ideal = std::min<int64_t>(k, static_cast<int64_t>(distinct.size()));
  for (int64_t i = 0; i < ideal; ++i) idcg += 1.0 / std::log2(static_cast<double>(i) + 2.0);
  return dcg / idcg;
}

double mrr_at_k(const std::vector<int64_t>& ranking, const std::vector<int64_t>& relevant, int64_t k) {
  check_relevant(relevant, "mrr_at_k");
  const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(ranking.size()));
  for (int64_t i = 0; i < n; ++i)
    if (contains(relevant, ranking[static_cast<size_t>(i)])) return 1.0 / static_cast<double>(i + 1);
  return 0.0;
}

double recall_at_k(const std::vector<int64_t>& ranking, const std::vector<int64_t>& relevant, int64_t k) {
  check_relevant(relevant, "recall_at_k");
  std::set<int64_t> distinct(relevant.begin(), relevant.end());
  const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(ranking.size()));
  int64_t hit = 0;
  for (int64_t i = 0; i < n; ++i) hit += distinct.count(ranking[static_cast<size_t>(i)]) ? 1 : 0;
  return static_cast<double>(hit) / static_cast<double>(distinct.size());
}

RankingMetrics ranking_metrics(const std::vector<std::vector<int64_t>>& rankings,
                               const std::vector<std::vector<int64_t>>& relevant) {
  if (rankings.size() != relevant.size()) throw Error("ranking_metrics: rankings and relevance lists differ in length");
  RankingMetrics m;
  m.queries = static_cast<int64_t>(rankings.size());
  for (size_t q = 0; q < rankings.size(); ++q) {
    if (relevant[q].empty()) {
      ++m.skipped_no_relevant;
      continue;
    }
    ++m.evaluated;
    m.ndcg10 += ndcg_at_k(rankings[q], relevant[q], 10);
    m.mrr10 += mrr_at_k(rankings[q], relevant[q], 10);
    m.recall1 += recall_at_k(rankings[q], relevant[q], 1);
    m.recall10 += recall_at_k(rankings[q], relevant[q], 10);
    m.recall100 += recall_at_k(rankings[q], relevant[q], 100);
  }
  if (m.evaluated > 0) {
    const double n = static_cast<double>(m.evaluated);
    m.ndcg10 /= n;
    m.mrr10 /= n;
    m.recall1 /= n;
    m.recall10 /= n;
    m.recall100 /= n;
  } else {
    m.ndcg10 = m.mrr10 = m.recall1 = m.recall10 = m.recall100 = kNaN;
  }
  return m;
}

std::vector<int64_t> top_k_indices(const float* scores, int64_t n, int64_t k) {
  k = std::max<int64_t>(0, std::min(k, n));
  std::vector<int64_t> idx(static_cast<size_t>(k));
  kernels::top_k(scores, n, k, idx.data(), nullptr);  // descending, ties by index, NaN last
  return idx;
}

std::vector<std::vector<int64_t>> exact_search(const float* Q, int64_t nq, const float* C, int64_t nc, int64_t dim,
                                               int64_t k) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(nq));
  if (nq == 0 || nc == 0) return out;
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(nq, (int64_t{1} << 24) / nc));  // ≤ 64 MiB of scores
  std::vector<float> S(static_cast<size_t>(block * nc));
  for (int64_t q0 = 0; q0 < nq; q0 += block) {
    const int64_t m = std::min(block, nq - q0);
    // S[m, nc] = Q[q0:q0+m, dim] · C[nc, dim]ᵀ
    kernels::gemm(Q + q0 * dim, C, nullptr, S.data(), m, nc, dim);
    for (int64_t i = 0; i < m; ++i) out[static_cast<size_t>(q0 + i)] = top_k_indices(S.data() + i * nc, nc, k);
  }
  return out;
}

std::vector<std::vector<int64_t>> maxsim_search(const std::vector<float>& q_vecs, const std::vector<int64_t>& q_off,
                                                const std::vector<float>& d_vecs, const std::vector<int64_t>& d_off,
                                                int64_t dim, int64_t k, std::vector<float>* scores_out) {
  if (q_off.empty() || d_off.empty()) throw Error("maxsim_search: offsets must start with 0");
  const int64_t nq = static_cast<int64_t>(q_off.size()) - 1, nd = static_cast<int64_t>(d_off.size()) - 1;
  const int64_t QT = q_off.back(), DT = d_off.back();
  if (static_cast<int64_t>(q_vecs.size()) != QT * dim || static_cast<int64_t>(d_vecs.size()) != DT * dim)
    throw Error("maxsim_search: vector buffers do not match the offsets");
  std::vector<float> scores(static_cast<size_t>(nq * nd), 0.0f);
  // Blocks of whole documents, ~4096 tokens each: S[QT, tokens] = Qᵀ-all · D-blockᵀ, then per
  // (query token, document) the max over the document's tokens, summed over the query's tokens.
  std::vector<float> S;
  int64_t d0 = 0;
  while (d0 < nd) {
    int64_t d1 = d0 + 1;
    while (d1 < nd && d_off[static_cast<size_t>(d1 + 1)] - d_off[static_cast<size_t>(d0)] <= 4096) ++d1;
    const int64_t t0 = d_off[static_cast<size_t>(d0)], nt = d_off[static_cast<size_t>(d1)] - t0;
    S.resize(static_cast<size_t>(QT * nt));
    kernels::gemm(q_vecs.data(), d_vecs.data() + t0 * dim, nullptr, S.data(), QT, nt, dim);
    for (int64_t q = 0; q < nq; ++q)
      for (int64_t d = d0; d < d1; ++d) {
        const int64_t a = d_off[static_cast<size_t>(d)] - t0, b = d_off[static_cast<size_t>(d + 1)] - t0;
        double sum = 0;
        for (int64_t i = q_off[static_cast<size_t>(q)]; i < q_off[static_cast<size_t>(q + 1)]; ++i) {
          const float* row = S.data() + i * nt;
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = a; j < b; ++j) mx = std::max(mx, row[j]);
          sum += mx;
        }
        scores[static_cast<size_t>(q * nd + d)] = static_cast<float>(sum);
      }
    d0 = d1;
  }
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(nq));
  for (int64_t q = 0; q < nq; ++q) out[static_cast<size_t>(q)] = top_k_indices(scores.data() + q * nd, nd, k);
  if (scores_out) *scores_out = std::move(scores);
  return out;
}

}  // namespace modernbert
