// Classification baselines the project computes itself: majority class and TF-IDF (word unigrams +
// bigrams, sublinear tf, smooth idf, l2 norm, min_df) + multinomial logistic regression (L2,
// deterministic full-batch L-BFGS). Also the word tokenizers shared with BM25.
#include <unicode/uchar.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <unordered_map>

#include "modernbert/baselines.h"
#include "modernbert/error.h"
#include "modernbert/metrics.h"

namespace modernbert {

using nlohmann::json;

namespace {

// Decodes one UTF-8 code point at s[i]; returns -1 (and advances one byte) on invalid input.
int32_t next_cp(const std::string& s, size_t& i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + static_cast<size_t>(len) > s.size()) {
    ++i;
    return -1;
  }
  int32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (int k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
    if ((cc >> 6) != 2) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += static_cast<size_t>(len);
  return cp;
}

void append_utf8(std::string& out, int32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Letters and numbers (Python's str.isalnum, close enough: ICU alphabetic or any numeric type).
bool is_alnum_cp(int32_t cp) {
  if (cp < 0) return false;
  if (cp < 0x80) return std::isalnum(cp) != 0;
  return u_isUAlphabetic(cp) || u_charType(cp) == U_DECIMAL_DIGIT_NUMBER || u_charType(cp) == U_LETTER_NUMBER ||
         u_charType(cp) == U_OTHER_NUMBER;
}

// Runs of code points satisfying `word`, each as (original, lower-cased) strings.
template <class Pred>
std::vector<std::pair<std::string, std::string>> runs(const std::string& text, Pred word) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string orig, low;
  size_t i = 0;
  auto flush = [&] {
    if (!orig.empty()) out.emplace_back(std::move(orig), std::move(low));
    orig.clear();
    low.clear();
  };
  while (i < text.size()) {
    const size_t start = i;
    const int32_t cp = next_cp(text, i);
    if (word(cp)) {
      orig.append(text, start, i - start);
      append_utf8(low, u_tolower(cp));
    } else {
      flush();
    }
  }
  flush();
  return out;
}

bool is_upper_ascii(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower_ascii(char c) { return c >= 'a' && c <= 'z'; }

// Splits an identifier on '_' and camelCase boundaries (aB -> a|B, ABc -> A|Bc); lower-cased parts.
std::vector<std::string> identifier_parts(const std::string& id) {
  std::vector<std::string> parts;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) {
      std::string low;
      for (const auto& r : runs(cur, [](int32_t cp) { return cp >= 0; })) low += r.second;
      parts.push_back(low);
    }
    cur.clear();
  };
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (c == '_') {
      flush();
      continue;
    }
    if (!cur.empty() && is_upper_ascii(c)) {
      const char prev = cur.back();
      const bool next_lower = i + 1 < id.size() && is_lower_ascii(id[i + 1]);
      if (is_lower_ascii(prev) || (is_upper_ascii(prev) && next_lower) || (prev >= '0' && prev <= '9')) flush();
    }
    cur.push_back(c);
  }
  flush();
  return parts;
}

}  // namespace

std::vector<std::string> simple_tokenize(const std::string& text, bool code) {
  std::vector<std::string> out;
  if (!code) {
    for (auto& r : runs(text, is_alnum_cp)) out.push_back(std::move(r.second));
    return out;
  }
  for (auto& r : runs(text, [](int32_t cp) { return cp == '_' || is_alnum_cp(cp); })) {
    auto parts = identifier_parts(r.first);
    const bool any_alnum = !parts.empty();
    if (!any_alnum) continue;  // only underscores
    std::string whole;
    for (char c : r.second) whole.push_back(c);
    out.push_back(whole);
    if (parts.size() > 1)
      for (auto& p : parts) out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::string> tfidf_tokenize(const std::string& text) {
  std::vector<std::string> out;
  for (auto& r : runs(text, [](int32_t cp) { return cp == '_' || is_alnum_cp(cp); })) {
    // 2+ characters (code points).
    size_t n = 0, i = 0;
    while (i < r.first.size() && n < 2) {
      next_cp(r.first, i);
      ++n;
    }
    if (n >= 2) out.push_back(std::move(r.second));
  }
  return out;
}

// ---- TF-IDF ------------------------------------------------------------------------------------

std::vector<std::string> TfidfVectorizer::terms(const std::string& text) const {
  auto words = tfidf_tokenize(text);
  std::vector<std::string> t = words;
  if (o_.max_ngram >= 2)
    for (size_t i = 0; i + 1 < words.size(); ++i) t.push_back(words[i] + " " + words[i + 1]);
  return t;
}

void TfidfVectorizer::fit(const std::vector<std::string>& texts) {
  if (o_.max_ngram < 1 || o_.max_ngram > 2) throw Error("TF-IDF: n-gram order must be 1 or 2");
  std::unordered_map<std::string, int64_t> df;
  for (const auto& text : texts) {
    auto t = terms(text);
    std::sort(t.begin(), t.end());
    t.erase(std::unique(t.begin(), t.end()), t.end());
    for (auto& x : t) ++df[x];
  }
  // Deterministic column order: sorted terms.
  std::vector<std::pair<std::string, int64_t>> kept;
  for (auto& [term, d] : df)
    if (d >= o_.min_df) kept.emplace_back(term, d);
  std::sort(kept.begin(), kept.end());
  vocab_.clear();
  idf_.clear();
  const double n = static_cast<double>(texts.size());
  for (const auto& [term, d] : kept) {
    vocab_.emplace(term, static_cast<int32_t>(idf_.size()));
    idf_.push_back(static_cast<float>(std::log((1.0 + n) / (1.0 + static_cast<double>(d))) + 1.0));
  }
  if (idf_.empty()) throw Error("TF-IDF: no term occurs in min_df=" + std::to_string(o_.min_df) + " training documents");
}

SparseMatrix TfidfVectorizer::transform(const std::vector<std::string>& texts) const {
  SparseMatrix X;
  X.rows = static_cast<int64_t>(texts.size());
  X.cols = static_cast<int64_t>(idf_.size());
  for (const auto& text : texts) {
    std::map<int32_t, int64_t> tf;
    for (const auto& t : terms(text)) {
      auto it = vocab_.find(t);
      if (it != vocab_.end()) ++tf[it->second];
    }
    double norm = 0;
    const size_t start = X.values.size();
    for (const auto& [col, c] : tf) {
      double v = o_.sublinear_tf ? 1.0 + std::log(static_cast<double>(c)) : static_cast<double>(c);
      v *= idf_[static_cast<size_t>(col)];
      X.indices.push_back(col);
      X.values.push_back(static_cast<float>(v));
      norm += v * v;
    }
    if (norm > 0) {
      const double inv = 1.0 / std::sqrt(norm);
      for (size_t k = start; k < X.values.size(); ++k) X.values[k] = static_cast<float>(X.values[k] * inv);
    }
    X.indptr.push_back(static_cast<int64_t>(X.values.size()));
  }
  return X;
}

// ---- multinomial logistic regression (L-BFGS) -------------------------------------------------

namespace {

// f(w) = mean CE + ‖W‖²/(2·C·N) (bias not penalised; the sklearn objective divided by C·N).
// w is feature-major: w[j*K + k], j = D is the bias. Returns f, writes the gradient.
double logreg_objective(const SparseMatrix& X, const std::vector<int64_t>& y, int64_t K, double C,
                        const std::vector<double>& w, std::vector<double>& g) {
  const int64_t D = X.cols, N = X.rows;
  std::fill(g.begin(), g.end(), 0.0);
  std::vector<double> z(static_cast<size_t>(K));
  double loss = 0;
  const double* bias = w.data() + D * K;
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t k = 0; k < K; ++k) z[static_cast<size_t>(k)] = bias[k];
    for (int64_t p = X.indptr[static_cast<size_t>(i)]; p < X.indptr[static_cast<size_t>(i + 1)]; ++p) {
      const double v = X.values[static_cast<size_t>(p)];
      const double* wj = w.data() + static_cast<int64_t>(X.indices[static_cast<size_t>(p)]) * K;
      for (int64_t k = 0; k < K; ++k) z[static_cast<size_t>(k)] += v * wj[k];
    }
    double mx = *std::max_element(z.begin(), z.end()), s = 0;
    for (auto& v : z) s += std::exp(v - mx);
    const double lse = mx + std::log(s);
    loss += lse - z[static_cast<size_t>(y[static_cast<size_t>(i)])];
    for (int64_t k = 0; k < K; ++k) z[static_cast<size_t>(k)] = std::exp(z[static_cast<size_t>(k)] - lse);  // p
    z[static_cast<size_t>(y[static_cast<size_t>(i)])] -= 1.0;
    for (int64_t p = X.indptr[static_cast<size_t>(i)]; p < X.indptr[static_cast<size_t>(i + 1)]; ++p) {
      const double v = X.values[static_cast<size_t>(p)];
      double* gj = g.data() + static_cast<int64_t>(X.indices[static_cast<size_t>(p)]) * K;
      for (int64_t k = 0; k < K; ++k) gj[k] += v * z[static_cast<size_t>(k)];
    }
    double* gb = g.data() + D * K;
    for (int64_t k = 0; k < K; ++k) gb[k] += z[static_cast<size_t>(k)];
  }
  const double invN = 1.0 / static_cast<double>(N), lam = 1.0 / (C * static_cast<double>(N));
  double reg = 0;
  for (int64_t j = 0; j < D * K; ++j) {
    reg += w[static_cast<size_t>(j)] * w[static_cast<size_t>(j)];
    g[static_cast<size_t>(j)] = g[static_cast<size_t>(j)] * invN + lam * w[static_cast<size_t>(j)];
  }
  for (int64_t j = D * K; j < (D + 1) * K; ++j) g[static_cast<size_t>(j)] *= invN;
  return loss * invN + 0.5 * lam * reg;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void LogisticRegression::fit(const SparseMatrix& X, const std::vector<int64_t>& y, int64_t K, const LogRegOptions& o) {
  if (X.rows != static_cast<int64_t>(y.size()) || X.rows == 0) throw Error("logistic regression: no training data");
  if (K < 2) throw Error("logistic regression: needs at least 2 classes");
  if (o.C <= 0) throw Error("logistic regression: C must be positive");
  for (int64_t v : y)
    if (v < 0 || v >= K) throw Error("logistic regression: label out of range");
  K_ = K;
  D_ = X.cols;
  const size_t P = static_cast<size_t>((D_ + 1) * K_);
  w_.assign(P, 0.0);
  std::vector<double> g(P), w_new(P), g_new(P), d(P);
  std::vector<std::vector<double>> S, Y;
  std::vector<double> rho;
  double f = logreg_objective(X, y, K_, o.C, w_, g);
  iters_ = 0;
  auto inf_norm = [](const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
  };
  const double g0 = std::max(1.0, inf_norm(g));
  for (int64_t it = 0; it < o.max_iter; ++it) {
    if (inf_norm(g) <= o.tol * g0) break;
    // Two-loop recursion: d = −H g.
    d = g;
    std::vector<double> alpha(S.size());
    for (size_t k = S.size(); k-- > 0;) {
      alpha[k] = rho[k] * dot(S[k], d);
      for (size_t i = 0; i < P; ++i) d[i] -= alpha[k] * Y[k][i];
    }
    double gamma = S.empty() ? 1.0 / std::max(1e-12, std::sqrt(dot(g, g))) : dot(S.back(), Y.back()) / dot(Y.back(), Y.back());
    for (auto& v : d) v *= gamma;
    for (size_t k = 0; k < S.size(); ++k) {
      const double beta = rho[k] * dot(Y[k], d);
      for (size_t i = 0; i < P; ++i) d[i] += (alpha[k] - beta) * S[k][i];
    }
    for (auto& v : d) v = -v;
    double gd = dot(g, d);
    if (gd >= 0) {  // not a descent direction: restart from steepest descent
      S.clear();
      Y.clear();
      rho.clear();
      for (size_t i = 0; i < P; ++i) d[i] = -g[i] / std::max(1e-12, std::sqrt(dot(g, g)));
      gd = dot(g, d);
    }
    // Backtracking (Armijo) line search from step 1.
    double step = 1.0, f_new = 0;
    bool ok = false;
    for (int ls = 0; ls < 40; ++ls) {
      for (size_t i = 0; i < P; ++i) w_new[i] = w_[i] + step * d[i];
      f_new = logreg_objective(X, y, K_, o.C, w_new, g_new);
      if (f_new <= f + 1e-4 * step * gd) {
        ok = true;
        break;
      }
      step *= 0.5;
    }
    if (!ok) break;
    std::vector<double> s(P), yv(P);
    for (size_t i = 0; i < P; ++i) {
      s[i] = w_new[i] - w_[i];
      yv[i] = g_new[i] - g[i];
    }
    const double sy = dot(s, yv);
    if (sy > 1e-12) {
      if (static_cast<int64_t>(S.size()) == o.history) {
        S.erase(S.begin());
        Y.erase(Y.begin());
        rho.erase(rho.begin());
      }
      S.push_back(std::move(s));
      Y.push_back(std::move(yv));
      rho.push_back(1.0 / sy);
    }
    const double rel = std::fabs(f - f_new) / std::max({std::fabs(f), std::fabs(f_new), 1.0});
    w_.swap(w_new);
    g.swap(g_new);
    f = f_new;
    iters_ = it + 1;
    if (rel < 1e-10) break;
  }
  loss_ = f;
}

std::vector<int64_t> LogisticRegression::predict(const SparseMatrix& X) const {
  if (X.cols != D_) throw Error("logistic regression: feature count differs from training");
  std::vector<int64_t> out(static_cast<size_t>(X.rows));
  std::vector<double> z(static_cast<size_t>(K_));
  for (int64_t i = 0; i < X.rows; ++i) {
    for (int64_t k = 0; k < K_; ++k) z[static_cast<size_t>(k)] = w_[static_cast<size_t>(D_ * K_ + k)];
    for (int64_t p = X.indptr[static_cast<size_t>(i)]; p < X.indptr[static_cast<size_t>(i + 1)]; ++p) {
      const double v = X.values[static_cast<size_t>(p)];
      const double* wj = w_.data() + static_cast<int64_t>(X.indices[static_cast<size_t>(p)]) * K_;
      for (int64_t k = 0; k < K_; ++k) z[static_cast<size_t>(k)] += v * wj[k];
    }
    out[static_cast<size_t>(i)] = std::max_element(z.begin(), z.end()) - z.begin();
  }
  return out;
}

// ---- the classification baseline runner --------------------------------------------------------

namespace {

struct LabelledSet {
  std::string path;
  std::vector<std::string> texts;
  std::vector<int64_t> labels;
  std::vector<Example> examples;
};

// Reads the labelled sets of the baselines. Labels: integer ids (names from "label_name" when
// present, which must be consistent) or names (ids = index in the sorted list of the training names).
struct LabelReader {
  const ClassificationBaselineOptions& o;
  std::map<int64_t, std::string> id_names;
  std::map<std::string, int64_t> name_ids;
  bool string_labels = false;

  LabelledSet load(const std::string& path, bool is_train) {
    LabelledSet s;
    s.path = path;
    s.examples = read_examples(path, o.text_field, "", o.lossy_utf8);
    if (is_train) {
      for (const auto& e : s.examples)
        if (e.record.contains(o.label_field) && e.record[o.label_field].is_string()) string_labels = true;
      if (string_labels) {
        std::set<std::string> names;
        for (const auto& e : s.examples)
          if (e.record.contains(o.label_field) && e.record[o.label_field].is_string())
            names.insert(e.record[o.label_field].get<std::string>());
        for (const auto& n : names) {
          name_ids[n] = static_cast<int64_t>(name_ids.size());
          id_names[name_ids[n]] = n;
        }
      }
    }
    for (const auto& e : s.examples) {
      const std::string where = path + ":" + std::to_string(e.line);
      if (!e.record.contains(o.label_field)) throw Error(where + ": missing label field \"" + o.label_field + "\"");
      const json& v = e.record[o.label_field];
      int64_t id;
      if (string_labels) {
        if (!v.is_string()) throw Error(where + ": labels must all be names (the training set uses names)");
        auto it = name_ids.find(v.get<std::string>());
        if (it == name_ids.end())
          throw Error(where + ": label \"" + v.get<std::string>() + "\" does not occur in the training set");
        id = it->second;
      } else {
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
          throw Error(where + ": label must be a non-negative integer, found " + v.dump());
        id = v.get<int64_t>();
        if (e.record.contains("label_name") && e.record["label_name"].is_string()) {
          const std::string nm = e.record["label_name"].get<std::string>();
          auto it = id_names.find(id);
          if (it == id_names.end())
            id_names[id] = nm;
          else if (it->second != nm)
            throw Error(where + ": label " + std::to_string(id) + " is named \"" + nm + "\" here but \"" + it->second +
                        "\" earlier");
        }
      }
      s.texts.push_back(e.text);
      s.labels.push_back(id);
    }
    return s;
  }
};

}  // namespace

BaselineMethod parse_baseline_method(const std::string& s) {
  if (s == "majority") return BaselineMethod::kMajority;
  if (s == "tfidf-lr") return BaselineMethod::kTfidfLr;
  if (s == "all") return BaselineMethod::kAll;
  throw Error("baseline: --method must be majority, tfidf-lr or all, got '" + s + "'");
}

json run_classification_baselines(const ClassificationBaselineOptions& o) {
  if (o.train.empty()) throw Error("baseline: --train (or --data DIR with train.jsonl) is required");
  LabelReader labels{o, {}, {}, false};
  auto load = [&](const std::string& path, bool is_train) { return labels.load(path, is_train); };
  std::map<int64_t, std::string>& id_names = labels.id_names;
  LabelledSet train = load(o.train, true);
  std::vector<LabelledSet> evals;
  std::vector<std::string> split_names;
  if (!o.dev.empty()) {
    evals.push_back(load(o.dev, false));
    split_names.push_back("dev");
  }
  if (!o.test.empty()) {
    evals.push_back(load(o.test, false));
    split_names.push_back("test");
  }
  if (evals.empty()) throw Error("baseline: give --dev and/or --test to evaluate on");
  int64_t K = 0;
  for (int64_t v : train.labels) K = std::max(K, v + 1);
  for (const auto& s : evals)
    for (int64_t v : s.labels) K = std::max(K, v + 1);
  if (!id_names.empty()) K = std::max(K, id_names.rbegin()->first + 1);
  std::vector<std::string> names;
  for (int64_t k = 0; k < K; ++k) names.push_back(id_names.count(k) ? id_names[k] : std::to_string(k));
  std::optional<int64_t> positive;
  if (!o.positive_label.empty()) {
    auto it = std::find(names.begin(), names.end(), o.positive_label);
    if (it == names.end()) throw Error("--positive-label '" + o.positive_label + "' is not one of the labels");
    positive = it - names.begin();
  } else if (K == 2) {
    positive = 1;
  }
  auto report = [&](const LabelledSet& s, const std::vector<int64_t>& pred) {
    json j = classification_report_json(classification_metrics(s.labels, pred, K), names, positive);
    if (!o.group_field.empty()) {
      std::map<std::string, std::pair<int64_t, int64_t>> g;
      for (size_t i = 0; i < s.examples.size(); ++i) {
        const json& r = s.examples[i].record;
        if (!r.contains(o.group_field)) continue;
        std::string key = r[o.group_field].is_string() ? r[o.group_field].get<std::string>() : r[o.group_field].dump();
        ++g[key].first;
        g[key].second += s.labels[i] == pred[i];
      }
      json groups = json::object();
      for (const auto& [k, v] : g)
        groups[k] = {{"n", v.first}, {"accuracy", static_cast<double>(v.second) / static_cast<double>(v.first)}};
      j["groups"] = groups;
    }
    return j;
  };
  json out = {{"task", "classification"}, {"train", o.train}, {"num_labels", K}, {"labels", names}, {"n_train", train.texts.size()}};
  for (size_t i = 0; i < evals.size(); ++i) out[split_names[i]] = evals[i].path;
  json baselines = json::object();
  if (o.method == BaselineMethod::kAll || o.method == BaselineMethod::kMajority) {
    std::vector<int64_t> counts(static_cast<size_t>(K), 0);
    for (int64_t v : train.labels) ++counts[static_cast<size_t>(v)];
    const int64_t maj = std::max_element(counts.begin(), counts.end()) - counts.begin();  // ties: lowest id
    json b = {{"predicts", names[static_cast<size_t>(maj)]}};
    for (size_t i = 0; i < evals.size(); ++i)
      b[split_names[i]] = report(evals[i], std::vector<int64_t>(evals[i].labels.size(), maj));
    baselines["majority"] = b;
  }
  if (o.method == BaselineMethod::kAll || o.method == BaselineMethod::kTfidfLr) {
    auto t0 = std::chrono::steady_clock::now();
    TfidfVectorizer vec(o.tfidf);
    vec.fit(train.texts);
    SparseMatrix Xtr = vec.transform(train.texts);
    std::vector<SparseMatrix> Xev;
    for (const auto& s : evals) Xev.push_back(vec.transform(s.texts));
    if (o.progress)
      std::fprintf(stderr, "baseline: TF-IDF vocabulary %lld terms (%lld-grams, min_df %lld), %zu nonzeros in train\n",
                   static_cast<long long>(vec.vocabulary_size()), static_cast<long long>(o.tfidf.max_ngram),
                   static_cast<long long>(o.tfidf.min_df), Xtr.values.size());
    std::vector<double> grid = o.c_grid.empty() ? std::vector<double>{o.logreg.C} : o.c_grid;
    const bool select = grid.size() > 1;
    const auto dev_it = std::find(split_names.begin(), split_names.end(), "dev");
    if (select && dev_it == split_names.end()) throw Error("baseline: choosing C from a grid needs --dev");
    const size_t dev_idx = static_cast<size_t>(dev_it - split_names.begin());
    double best_c = grid[0], best_f1 = -1;
    json by_c = json::object();
    LogisticRegression best;
    for (double c : grid) {
      LogRegOptions lo = o.logreg;
      lo.C = c;
      LogisticRegression lr;
      lr.fit(Xtr, train.labels, K, lo);
      double f1 = 0;
      if (select) {
        f1 = classification_metrics(evals[dev_idx].labels, lr.predict(Xev[dev_idx]), K).macro_f1;
        char key[32];
        std::snprintf(key, sizeof key, "%g", c);
        by_c[key] = f1;
      }
      if (o.progress)
        std::fprintf(stderr, "baseline: logistic regression C=%g: %lld L-BFGS iterations, loss %.6f%s\n", c,
                     static_cast<long long>(lr.iterations()), lr.final_loss(),
                     select ? (", dev macro-F1 " + std::to_string(f1)).c_str() : "");
      if (!select || f1 > best_f1) {
        best_f1 = f1;
        best_c = c;
        best = std::move(lr);
      }
    }
    json b = {{"C", best_c}, {"vocabulary", vec.vocabulary_size()}, {"max_ngram", o.tfidf.max_ngram},
              {"min_df", o.tfidf.min_df}, {"sublinear_tf", o.tfidf.sublinear_tf}, {"iterations", best.iterations()},
              {"hit_max_iter", best.iterations() >= o.logreg.max_iter}};
    if (select) b["dev_macro_f1_by_C"] = by_c;
    for (size_t i = 0; i < evals.size(); ++i) b[split_names[i]] = report(evals[i], best.predict(Xev[i]));
    b["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    baselines["tfidf-lr"] = b;
  }
  out["baselines"] = baselines;
  return out;
}

}  // namespace modernbert
