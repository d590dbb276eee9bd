// modernbert finetune --task embedding | colbert: contrastive fine-tuning of the encoder for
// retrieval with in-batch negatives (see include/modernbert/finetune.h).
//
// One optimizer step = a batch of queries and their positives, split into micro-batches (one
// unless gradient accumulation or data parallelism: finetune.h), each encoded as ONE unpadded batch
// (its queries first, then its distinct positive documents), so a forward_hidden / backward_hidden
// pair serves both sides; the vectors of all micro-batches meet in one loss (retrieval_vectors,
// info_nce_loss / maxsim_contrastive_loss, retrieval_vectors_backward in src/train/contrastive.cpp).
// The steps are train::run_training_loop's; RetrievalTask supplies the batches, the loss and the
// dev ranking metrics.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "modernbert/contrastive.h"
#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/file_io.h"
#include "modernbert/finetune.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/optimizer.h"
#include "modernbert/safetensors.h"
#include "modernbert/search.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"
#include "modernbert/train_model.h"
#include "modernbert/weights.h"
#include "tasks/finetune_run.h"
#include "tasks/finetune_util.h"
#include "tasks/jsonl.h"

namespace modernbert {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using finetune_util::shuffled;
using finetune_util::splitmix64;

// Queries of a training or dev file. Each line is either
//   {"qid"?, "query", "positive_ids": [ids in the corpus]}   (the shared retrieval sets), or
//   {"query", "positive": text | [texts]}                     (sentence-transformers pairs);
// pair texts become corpus documents (deduplicated by text, id "text:N").
std::vector<RetrievalQuery> read_training_queries(const std::string& path, std::vector<RetrievalDoc>& corpus,
                                                  std::unordered_map<std::string, int64_t>& doc_index,
                                                  bool has_corpus_file, bool lossy_utf8) {
  std::unordered_map<std::string, int64_t> by_text;
  for (size_t i = 0; i < corpus.size(); ++i) by_text.emplace(corpus[i].text, static_cast<int64_t>(i));
  std::vector<RetrievalQuery> out;
  std::set<std::string> seen;
  for_each_jsonl(path, [&](size_t lineno, json& j) {
    const std::string w = path + ":" + std::to_string(lineno);
    if (!j.contains("query") || !j["query"].is_string())
      throw Error(w + ": expected {\"query\": text, \"positive_ids\": [...]} or {\"query\": text, \"positive\": text}");
    RetrievalQuery q;
    q.query = j["query"].get<std::string>();
    if (q.query.empty()) throw Error(w + ": empty query");
    q.qid = j.contains("qid") && j["qid"].is_string() ? j["qid"].get<std::string>() : w;
    if (!seen.insert(q.qid).second) throw Error(w + ": duplicate query id '" + q.qid + "'");
    if (j.contains("positive_ids")) {
      if (!has_corpus_file) throw Error(w + ": \"positive_ids\" refer to a corpus: pass --corpus");
      if (!j["positive_ids"].is_array()) throw Error(w + ": \"positive_ids\" must be a list of document ids");
      for (const auto& p : j["positive_ids"]) {
        if (!p.is_string()) throw Error(w + ": \"positive_ids\" must hold strings");
        q.positive_ids.push_back(p.get<std::string>());
      }
    } else if (j.contains("positive")) {
      std::vector<std::string> texts;
      if (j["positive"].is_string())
        texts.push_back(j["positive"].get<std::string>());
      else if (j["positive"].is_array())
        for (const auto& p : j["positive"]) {
          if (!p.is_string()) throw Error(w + ": \"positive\" must hold strings");
          texts.push_back(p.get<std::string>());
        }
      else
        throw Error(w + ": \"positive\" must be a text or a list of texts");
      for (const auto& t : texts) {
        if (t.empty()) throw Error(w + ": empty positive text");
        auto it = by_text.find(t);
        if (it == by_text.end()) {
          RetrievalDoc d{"text:" + std::to_string(corpus.size()), t, ""};
          it = by_text.emplace(t, static_cast<int64_t>(corpus.size())).first;
          doc_index[d.id] = static_cast<int64_t>(corpus.size());
          corpus.push_back(std::move(d));
        }
        q.positive_ids.push_back(corpus[static_cast<size_t>(it->second)].id);
      }
    } else {
      throw Error(w + ": no \"positive_ids\" or \"positive\" field");
    }
    if (q.positive_ids.empty()) throw Error(w + ": query '" + q.qid + "' has no positive document");
    out.push_back(std::move(q));
  }, lossy_utf8);  // an empty file is an error there
  return out;
}

EmbedPooling pooling_of(const FinetuneOptions& o, const LoadedModel& src) {
  if (o.pooling) return *o.pooling;
  const auto& st = src.sentence_transformers;
  if (st.present && !st.pooling_mode.empty()) return parse_embed_pooling(st.pooling_mode);
  return src.config.classifier_pooling == Pooling::kCls ? EmbedPooling::kCls : EmbedPooling::kMean;
}

void write_json(const std::string& path, const json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

// sentence-transformers (embedding) or PyLate (ColBERT) module files next to the HF weights.
void save_st_files(const std::string& out, bool colbert, EmbedPooling pooling, int64_t H, int64_t max_len,
                   const FinetuneOptions& o, const std::vector<float>& proj, int64_t dc) {
  json modules = json::array();
  modules.push_back({{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}});
  if (colbert) {
    modules.push_back({{"idx", 1}, {"name", "1"}, {"path", "1_Dense"}, {"type", "pylate.models.Dense.Dense"}});
    fs::create_directories(out + "/1_Dense");
    write_json(out + "/1_Dense/config.json", {{"in_features", H},
                                              {"out_features", dc},
                                              {"bias", false},
                                              {"activation_function", "torch.nn.modules.linear.Identity"}});
    SafeTensorsWriter wr;
    wr.set_metadata("format", "pt");
    wr.add_f32("linear.weight", {dc, H}, proj.data());
    wr.write(out + "/1_Dense/model.safetensors");
  } else {
    modules.push_back(
        {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}});
    modules.push_back(
        {{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}});
    fs::create_directories(out + "/1_Pooling");
    fs::create_directories(out + "/2_Normalize");
    write_json(out + "/1_Pooling/config.json", {{"word_embedding_dimension", H},
                                                {"pooling_mode_cls_token", pooling == EmbedPooling::kCls},
                                                {"pooling_mode_mean_tokens", pooling == EmbedPooling::kMean},
                                                {"pooling_mode_max_tokens", pooling == EmbedPooling::kMax},
                                                {"pooling_mode_mean_sqrt_len_tokens", false},
                                                {"pooling_mode_weightedmean_tokens", false},
                                                {"pooling_mode_lasttoken", false},
                                                {"include_prompt", true}});
  }
  write_json(out + "/sentence_bert_config.json", {{"max_seq_length", max_len}, {"do_lower_case", false}});
  json prompts = json::object();
  if (!o.query_prompt.empty()) prompts["query"] = o.query_prompt;
  if (!o.document_prompt.empty()) prompts["document"] = o.document_prompt;
  json stc = {{"prompts", prompts},
              {"default_prompt_name", nullptr},
              {"similarity_fn_name", colbert ? "MaxSim" : "cosine"},
              {"__version__", {{"modernbert.cpp", "finetune"}}}};
  write_json(out + "/config_sentence_transformers.json", stc);
  write_json(out + "/modules.json", modules);  // last: a directory is an ST model once this exists
}

void check_options(const FinetuneOptions& o, bool colbert) {
  if (o.epochs < 1) throw Error("finetune: --epochs must be >= 1");
  if (o.batch_size < 2) throw Error("finetune: --batch-size must be >= 2 for in-batch negatives");
  if (o.max_length < 2 || o.query_max_length < 2 || (o.doc_max_length != 0 && o.doc_max_length < 2))
    throw Error("finetune: --max-length / --query-max-length / --doc-max-length must be >= 2");
  if (!(o.lr > 0)) throw Error("finetune: --lr must be > 0");
  if (o.temperature < 0) throw Error("finetune: --temperature must be > 0");
  if (o.warmup_ratio < 0 || o.warmup_ratio > 1) throw Error("finetune: --warmup-ratio must be in [0, 1]");
  if (colbert && o.colbert_dim < 1) throw Error("finetune: --colbert-dim must be >= 1");
  if (!colbert && o.pooling == EmbedPooling::kMax) throw Error("finetune: --pooling must be cls or mean");
  if (o.out.empty()) throw Error("finetune: --out is required");
  finetune_util::check_parallel_options(o);
}

// The corpus (with pair texts added), the query sets and each training query's positive rows.
struct RetrievalSets {
  std::vector<RetrievalDoc> corpus;
  std::vector<RetrievalQuery> train, dev;
  std::vector<std::vector<int64_t>> train_pos;
};

RetrievalSets read_sets(const FinetuneOptions& o) {
  RetrievalSets d;
  if (!o.corpus.empty()) d.corpus = read_corpus(o.corpus, o.lossy_utf8);
  std::unordered_map<std::string, int64_t> doc_index;
  for (size_t i = 0; i < d.corpus.size(); ++i) doc_index[d.corpus[i].id] = static_cast<int64_t>(i);
  d.train = read_training_queries(o.train, d.corpus, doc_index, !o.corpus.empty(), o.lossy_utf8);
  d.dev = read_training_queries(o.dev, d.corpus, doc_index, !o.corpus.empty(), o.lossy_utf8);
  // Training positives as corpus rows; a positive id that is not in the corpus is an error here
  // (a silent drop would train on fewer pairs than the user thinks).
  d.train_pos.resize(d.train.size());
  for (size_t i = 0; i < d.train.size(); ++i)
    for (const auto& id : d.train[i].positive_ids) {
      auto it = doc_index.find(id);
      if (it == doc_index.end())
        throw Error(o.train + ": query '" + d.train[i].qid + "': positive id '" + id + "' is not in the corpus " +
                    o.corpus);
      d.train_pos[i].push_back(it->second);
    }
  return d;
}

// ColBERT projection [Dc, H]: the checkpoint's Dense when it has one of this shape (continued
// fine-tuning), else nn.Linear's default init U(±1/sqrt(H)) as PyLate gets it. `root`: the rank
// that says so.
std::vector<float> initial_projection(const FinetuneOptions& o, const SentenceTransformersInfo& st, int64_t H,
                                      int64_t Dc, bool root) {
  if (st.dense_out > 0 && st.dense_bias.empty() && st.dense_in == H && st.dense_out == Dc) return st.dense_weight;
  if (st.dense_out > 0 && o.progress && root)
    std::fprintf(stderr, "finetune: the checkpoint's Dense module (%lld -> %lld%s) is not reused\n",
                 static_cast<long long>(st.dense_in), static_cast<long long>(st.dense_out),
                 st.dense_bias.empty() ? "" : ", with bias");
  std::vector<float> proj(static_cast<size_t>(Dc * H));
  uint64_t s = o.seed ^ 0xC01BE27ull;
  const double bound = 1.0 / std::sqrt(static_cast<double>(H));
  for (auto& v : proj) v = static_cast<float>((2.0 * finetune_util::uniform01(s) - 1.0) * bound);
  return proj;
}

// Token ids of the documents and queries (prompts prepended), and the dev search scope: the
// documents of the dev split when the corpus has splits, else all of them.
struct Encoded {
  std::vector<std::vector<int32_t>> docs, q_train, q_dev;
  SearchScope dev_scope{"dev", {}};
};

Encoded encode_sets(const FinetuneOptions& o, const Tokenizer& tok, const RetrievalSets& d, int64_t doc_len) {
  auto encode = [&](const std::string& text, int64_t max_len) {
    EncodeOptions eo;
    eo.max_length = static_cast<size_t>(max_len);
    Encoding e = tok.encode(text, eo);
    if (e.ids.empty()) e.ids.push_back(0);
    return e.ids;
  };
  Encoded e;
  e.docs.resize(d.corpus.size());
  for (size_t i = 0; i < d.corpus.size(); ++i) e.docs[i] = encode(o.document_prompt + d.corpus[i].text, doc_len);
  e.q_train.resize(d.train.size());
  e.q_dev.resize(d.dev.size());
  for (size_t i = 0; i < d.train.size(); ++i)
    e.q_train[i] = encode(o.query_prompt + d.train[i].query, o.query_max_length);
  for (size_t i = 0; i < d.dev.size(); ++i) e.q_dev[i] = encode(o.query_prompt + d.dev[i].query, o.query_max_length);
  for (size_t i = 0; i < d.corpus.size(); ++i)
    if (d.corpus[i].split == "dev") e.dev_scope.doc_rows.push_back(static_cast<int64_t>(i));
  if (e.dev_scope.doc_rows.empty()) {
    e.dev_scope.name = "full";
    for (size_t i = 0; i < d.corpus.size(); ++i) e.dev_scope.doc_rows.push_back(static_cast<int64_t>(i));
  } else {
    e.dev_scope.name = "closed:dev";
  }
  return e;
}

// What the retrieval model is: encoder, pooling or projection, loss and the files it is saved with.
struct RetrievalModel {
  bool colbert = false;
  EmbedPooling pooling = EmbedPooling::kMean;
  ModelConfig cfg;
  int64_t H = 0, Dc = 0, doc_len = 0;
  std::vector<float> proj;  // colbert: [Dc, H]
  RetrievalLoss loss;
};

// ---- the task of the training loop ----

// One step per batch of batch_size queries (per-epoch shuffled order) with one positive each and
// the step's distinct positives as documents, in M = K x N micro-batches with gathered in-batch
// negatives (finetune.h); dev nDCG@10 by exact search after each epoch.
class RetrievalTask final : public train::TrainingTask {
 public:
  RetrievalTask(const FinetuneOptions& o, const RetrievalSets& d, const Encoded& e, RetrievalModel& m, Weights& w,
                Communicator& comm)
      : o_(o),
        d_(d),
        e_(e),
        m_(m),
        w_(w),
        comm_(comm),
        M_(finetune_util::micro_batches_per_step(o, comm)),
        tm_(w),
        enc_(w),
        proj_grad_(m.proj.size()) {}

  float* proj_grad() { return proj_grad_.data(); }

  void begin_epoch(int64_t epoch) override {
    order_ = shuffled(d_.train.size(), o_.seed * 1000003ull + static_cast<uint64_t>(epoch));
  }
  train::StepPlan plan_step(const train::LoopState& s, int64_t slot) override;
  train::MicroResult forward_backward(const train::LoopState& s, int64_t micro, float* grads) override;
  void add_step_fields(const train::LoopState&, const train::StepReport& r, json& rec) override {
    rec["queries"] = static_cast<int64_t>(qidx_.size());
    rec["documents"] = static_cast<int64_t>(docs_.size());
    rec["tokens"] = r.tokens;
  }
  train::EvalResult evaluate(const train::LoopState& s) override;
  void save(const train::LoopState&) override {
    if (!comm_.is_root()) return;
    save_model_dir(o_.out, m_.cfg, w_);
    save_st_files(o_.out, m_.colbert, m_.pooling, m_.H, m_.doc_len, o_, m_.proj, m_.Dc);
  }

 private:
  // A micro-batch: step queries [q0, q1) and step documents [d0, d1) (the positives first seen
  // among its queries), encoded as one batch (queries first); `rows`: its vectors' rows
  // (sequences, or ColBERT tokens) among the step's query rows and document rows.
  struct Micro {
    int64_t q0 = 0, q1 = 0, d0 = 0, d1 = 0;
    int64_t q_row0 = 0, q_rows = 0, d_row0 = 0, d_rows = 0;
    Batch batch;  // this rank's micro-batches only
  };
  const std::vector<int32_t>& query_ids(int64_t q) const { return e_.q_train[qidx_[static_cast<size_t>(q)]]; }
  const std::vector<int32_t>& doc_ids(int64_t j) const {
    return e_.docs[static_cast<size_t>(docs_[static_cast<size_t>(j)])];
  }
  // Vector rows of a sequence of `len` tokens: 1 (pooled) or len (ColBERT).
  int64_t rows_of(size_t len) const { return m_.colbert ? static_cast<int64_t>(len) : 1; }
  // The step's loss over every micro-batch's vectors (all ranks' gathered): loss_, dq_, dd_.
  void step_loss(const train::LoopState& s, const std::vector<float>& all);
  // Vectors of the dev sequences, encoded in shards; on rank 0 (ColBERT: with sequence offsets).
  void encode_dev(const std::vector<const std::vector<int32_t>*>& seqs, const SentenceTransformersInfo& st,
                  std::vector<float>& vecs, std::vector<int64_t>& off);

  const FinetuneOptions& o_;
  const RetrievalSets& d_;
  const Encoded& e_;
  RetrievalModel& m_;
  Weights& w_;
  Communicator& comm_;
  const int64_t M_;  // micro-batches per step
  TrainModel tm_;
  Encoder enc_;
  std::vector<float> proj_grad_, proj_scratch_, dhidden_, dvec_;
  std::vector<size_t> order_;
  // The planned step: its queries (rows of d_.train), distinct documents (corpus rows), each
  // query's target document and excluded documents (its other positives), and micro-batches.
  std::vector<size_t> qidx_;
  std::vector<int64_t> docs_, target_;
  std::vector<uint8_t> exclude_;
  std::vector<Micro> micro_;
  int64_t vec_dim_ = 0;         // H (pooled) or Dc (ColBERT)
  int64_t resident_ = -1;       // the micro-batch whose activations tm_ holds
  double loss_ = 0;             // the step's loss
  std::vector<float> dq_, dd_;  // d loss / d (query rows, document rows) of the step
};

train::StepPlan RetrievalTask::plan_step(const train::LoopState& s, int64_t slot) {
  train::StepPlan plan;
  const size_t N = d_.train.size();
  const size_t lo_i = static_cast<size_t>(slot * o_.batch_size);
  const size_t hi_i = std::min(N, lo_i + static_cast<size_t>(o_.batch_size));
  if (hi_i - lo_i < 2) {  // a lone query has no in-batch negative
    plan.skip = true;
    return plan;
  }
  // Queries, one positive each (drawn when a query has several), distinct documents in the order
  // they first appear.
  qidx_.assign(order_.begin() + static_cast<std::ptrdiff_t>(lo_i), order_.begin() + static_cast<std::ptrdiff_t>(hi_i));
  docs_.clear();
  target_.clear();
  std::map<int64_t, int64_t> slot_of;
  uint64_t rs = o_.seed ^ (static_cast<uint64_t>(s.step + 1) * 0x9E3779B97F4A7C15ull);
  for (size_t qi : qidx_) {
    const auto& pos = d_.train_pos[qi];
    const int64_t row = pos[pos.size() == 1 ? 0 : splitmix64(rs) % pos.size()];
    auto it = slot_of.find(row);
    if (it == slot_of.end()) {
      it = slot_of.emplace(row, static_cast<int64_t>(docs_.size())).first;
      docs_.push_back(row);
    }
    target_.push_back(it->second);
  }
  const int64_t Bq = static_cast<int64_t>(qidx_.size()), Bd = static_cast<int64_t>(docs_.size());
  exclude_.assign(static_cast<size_t>(Bq * Bd), 0);
  for (int64_t i = 0; i < Bq; ++i)
    for (int64_t p : d_.train_pos[qidx_[static_cast<size_t>(i)]]) {
      auto it = slot_of.find(p);
      if (it != slot_of.end() && it->second != target_[static_cast<size_t>(i)])
        exclude_[static_cast<size_t>(i * Bd + it->second)] = 1;
    }

  // Micro-batches: contiguous shares of the queries; a document goes with the micro-batch of the
  // first query that has it as its target (docs_ is in that order, so each share is contiguous).
  const Share mine = rank_share(M_, comm_.rank(), comm_.size());
  micro_.assign(static_cast<size_t>(M_), Micro{});
  int64_t q_row = 0, d_row = 0, next_doc = 0;
  for (int64_t m = 0; m < M_; ++m) {
    Micro& mb = micro_[static_cast<size_t>(m)];
    const Share qs = rank_share(Bq, static_cast<int>(m), static_cast<int>(M_));
    mb.q0 = qs.first;
    mb.q1 = qs.last;
    mb.d0 = next_doc;
    for (int64_t i = mb.q0; i < mb.q1; ++i) next_doc = std::max(next_doc, target_[static_cast<size_t>(i)] + 1);
    mb.d1 = next_doc;
    mb.q_row0 = q_row;
    mb.d_row0 = d_row;
    for (int64_t i = mb.q0; i < mb.q1; ++i) mb.q_rows += rows_of(query_ids(i).size());
    for (int64_t j = mb.d0; j < mb.d1; ++j) mb.d_rows += rows_of(doc_ids(j).size());
    q_row += mb.q_rows;
    d_row += mb.d_rows;
    for (int64_t i = mb.q0; i < mb.q1; ++i) plan.tokens += static_cast<int64_t>(query_ids(i).size());
    for (int64_t j = mb.d0; j < mb.d1; ++j) plan.tokens += static_cast<int64_t>(doc_ids(j).size());
    if (m < mine.first || m >= mine.last) continue;
    for (int64_t i = mb.q0; i < mb.q1; ++i) mb.batch.add(query_ids(i));
    for (int64_t j = mb.d0; j < mb.d1; ++j) mb.batch.add(doc_ids(j));
  }
  if (next_doc != Bd) throw Error("finetune: internal error: the micro-batches do not hold every document");

  // This rank's vectors, in micro-batch order; forwards in reverse so that the rank's first
  // micro-batch (the first to go back) keeps its activations in tm_.
  vec_dim_ = m_.colbert ? m_.Dc : m_.H;
  std::vector<std::vector<float>> vecs(static_cast<size_t>(M_));
  resident_ = -1;
  for (int64_t m = mine.last - 1; m >= mine.first; --m) {
    const Micro& mb = micro_[static_cast<size_t>(m)];
    if (mb.batch.num_seqs() == 0) continue;  // fewer queries than micro-batches
    vecs[static_cast<size_t>(m)] = retrieval_vectors(tm_.forward_hidden(mb.batch), mb.batch, m_.H, m_.loss);
    resident_ = m;
  }
  std::string bytes;
  for (int64_t m = mine.first; m < mine.last; ++m) {
    const auto& v = vecs[static_cast<size_t>(m)];
    bytes.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  // Every micro-batch's vectors on every rank, in micro-batch order (rank order is micro order).
  std::vector<float> all;
  if (comm_.size() == 1) {
    all.resize(bytes.size() / sizeof(float));
    std::memcpy(all.data(), bytes.data(), all.size() * sizeof(float));
  } else {
    size_t n = 0;
    const std::vector<std::string> parts = comm_.allgather_bytes(bytes);
    for (const auto& p : parts) n += p.size();
    all.resize(n / sizeof(float));
    size_t at = 0;
    for (const auto& p : parts) {
      std::memcpy(reinterpret_cast<char*>(all.data()) + at, p.data(), p.size());
      at += p.size();
    }
  }
  step_loss(s, all);
  plan.micro_batches = M_;
  return plan;
}

// The loss of the whole step, identical on every rank: the gathered vectors [micro 0: query rows,
// document rows | micro 1: ...] regrouped as all query rows then all document rows.
void RetrievalTask::step_loss(const train::LoopState& s, const std::vector<float>& all) {
  const size_t D = static_cast<size_t>(vec_dim_);
  const Micro& last = micro_.back();
  const int64_t q_rows = last.q_row0 + last.q_rows, d_rows = last.d_row0 + last.d_rows;
  if (all.size() != static_cast<size_t>(q_rows + d_rows) * D)
    throw Error("finetune: step " + std::to_string(s.step + 1) + ": gathered " + std::to_string(all.size() / D) +
                " vectors, expected " + std::to_string(q_rows + d_rows) + " (the ranks are out of step)");
  std::vector<float> q(static_cast<size_t>(q_rows) * D), d(static_cast<size_t>(d_rows) * D);
  size_t at = 0;
  for (const Micro& mb : micro_) {
    std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(at), mb.q_rows * D,
                q.begin() + static_cast<std::ptrdiff_t>(mb.q_row0 * D));
    at += mb.q_rows * D;
    std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(at), mb.d_rows * D,
                d.begin() + static_cast<std::ptrdiff_t>(mb.d_row0 * D));
    at += mb.d_rows * D;
  }
  dq_.assign(q.size(), 0.0f);
  dd_.assign(d.size(), 0.0f);
  const int64_t Bq = static_cast<int64_t>(qidx_.size()), Bd = static_cast<int64_t>(docs_.size());
  if (!m_.colbert) {
    loss_ =
        info_nce_loss(q.data(), Bq, d.data(), Bd, m_.H, target_, exclude_, m_.loss.temperature, dq_.data(), dd_.data());
  } else {
    std::vector<int64_t> qoff{0}, doff{0};
    for (int64_t i = 0; i < Bq; ++i) qoff.push_back(qoff.back() + static_cast<int64_t>(query_ids(i).size()));
    for (int64_t j = 0; j < Bd; ++j) doff.push_back(doff.back() + static_cast<int64_t>(doc_ids(j).size()));
    loss_ = maxsim_contrastive_loss(q.data(), qoff, d.data(), doff, m_.Dc, target_, exclude_, m_.loss.temperature,
                                    dq_.data(), dd_.data());
  }
  if (!std::isfinite(loss_))
    throw Error("finetune: the loss became " + std::to_string(loss_) + " at step " + std::to_string(s.step + 1) +
                " (lower --lr?)");
}

// Back-propagates micro-batch `micro` from its rows of the step's vector gradients; the step's
// loss is reported once, by micro-batch 0.
train::MicroResult RetrievalTask::forward_backward(const train::LoopState&, int64_t micro, float* grads) {
  const Micro& mb = micro_[static_cast<size_t>(micro)];
  const train::MicroResult r{micro == 0 ? loss_ : 0.0, 0};
  if (mb.batch.num_seqs() == 0) return r;
  if (resident_ != micro) {  // GradCache: this rank forwarded a later micro-batch since (same bits again)
    tm_.forward_hidden(mb.batch);
    resident_ = micro;
  }
  const float* hidden = tm_.last_hidden().data();
  const size_t D = static_cast<size_t>(vec_dim_);
  dvec_.resize(static_cast<size_t>(mb.q_rows + mb.d_rows) * D);
  std::copy_n(dq_.begin() + static_cast<std::ptrdiff_t>(mb.q_row0 * D), mb.q_rows * D, dvec_.begin());
  std::copy_n(dd_.begin() + static_cast<std::ptrdiff_t>(mb.d_row0 * D), mb.d_rows * D,
              dvec_.begin() + static_cast<std::ptrdiff_t>(mb.q_rows * D));
  // ColBERT's projection gradient: the rank's first micro-batch into the group's buffer (zeroed by
  // the loop), later ones from zero and then added, like the encoder's (the sums run in micro order).
  float* dproj = nullptr;
  if (m_.colbert) {
    dproj = proj_grad_.data();
    if (micro != rank_share(M_, comm_.rank(), comm_.size()).first) {
      proj_scratch_.assign(proj_grad_.size(), 0.0f);
      dproj = proj_scratch_.data();
    }
  }
  dhidden_.resize(static_cast<size_t>(mb.batch.num_tokens() * m_.H));
  retrieval_vectors_backward(hidden, mb.batch, m_.H, m_.loss, dvec_.data(), dhidden_.data(), dproj);
  if (dproj && dproj != proj_grad_.data())
    for (size_t i = 0; i < proj_grad_.size(); ++i) proj_grad_[i] += proj_scratch_[i];
  tm_.backward_hidden(mb.batch, dhidden_.data(), grads);
  return r;
}

void RetrievalTask::encode_dev(const std::vector<const std::vector<int32_t>*>& seqs, const SentenceTransformersInfo& st,
                               std::vector<float>& vecs, std::vector<int64_t>& off) {
  // The batches: sequences packed in order up to 8192 tokens (as one process packs them).
  std::vector<size_t> bounds{0};
  for (size_t i = 0; i < seqs.size();) {
    int64_t tokens = 0;
    size_t j = i;
    while (j < seqs.size() && (j == i || tokens + static_cast<int64_t>(seqs[j]->size()) <= 8192))
      tokens += static_cast<int64_t>(seqs[j++]->size());
    bounds.push_back(j);
    i = j;
  }
  std::vector<float> hidden;
  const std::string bytes = finetune_util::encode_shards(
      static_cast<int64_t>(bounds.size()) - 1,
      [&](int64_t part) {
        Batch b;
        for (size_t i = bounds[static_cast<size_t>(part)]; i < bounds[static_cast<size_t>(part) + 1]; ++i)
          b.add(*seqs[i]);
        enc_.forward(b, hidden);
        int64_t D = 0;
        std::vector<float> v;
        if (m_.colbert) {
          v = colbert_vectors(hidden.data(), b.num_tokens(), m_.H, &st, &D);
        } else {
          EmbedOptions eo;
          eo.pooling = m_.pooling;
          eo.normalize = true;
          v = sentence_embeddings(b, hidden.data(), m_.H, eo, &D);
        }
        return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
      },
      comm_);
  vecs.resize(bytes.size() / sizeof(float));
  std::memcpy(vecs.data(), bytes.data(), vecs.size() * sizeof(float));
  off.assign(1, 0);
  if (m_.colbert)
    for (const auto* sq : seqs) off.push_back(off.back() + static_cast<int64_t>(sq->size()));
}

// Dev: encode the dev queries and the scope's documents with the current weights (in shards),
// search exactly (cosine / MaxSim) and score with the shared ranking metrics on rank 0; rank 0's
// score on every rank.
train::EvalResult RetrievalTask::evaluate(const train::LoopState& s) {
  std::vector<const std::vector<int32_t>*> qs, ds;
  for (const auto& q : e_.q_dev) qs.push_back(&q);
  for (int64_t r : e_.dev_scope.doc_rows) ds.push_back(&e_.docs[static_cast<size_t>(r)]);
  std::vector<float> QV, DV;
  std::vector<int64_t> qoff, doff;
  SentenceTransformersInfo st;  // the projection as it is now (ColBERT)
  st.dense_weight = m_.proj;
  st.dense_in = m_.H;
  st.dense_out = m_.Dc;
  encode_dev(qs, st, QV, qoff);
  encode_dev(ds, st, DV, doff);
  train::EvalResult ev;
  ev.score = -std::numeric_limits<double>::infinity();
  if (comm_.is_root()) {
    std::vector<std::vector<int64_t>> ranks;
    const int64_t depth = std::max<int64_t>(o_.eval_depth, 10);
    if (m_.colbert)
      ranks = maxsim_search(QV, qoff, DV, doff, m_.Dc, depth);
    else
      ranks = exact_search(QV.data(), static_cast<int64_t>(e_.q_dev.size()), DV.data(),
                           static_cast<int64_t>(e_.dev_scope.doc_rows.size()), m_.H, depth);
    ev.metrics = score_rankings(d_.corpus, e_.dev_scope, d_.dev, ranks);
    ev.metrics["scope"] = e_.dev_scope.name;
    const json& m = ev.metrics;
    ev.score = m["ndcg@10"].is_number() ? m["ndcg@10"].get<double>() : -std::numeric_limits<double>::infinity();
    char buf[128];
    std::snprintf(buf, sizeof buf, "finetune: epoch %lld dev nDCG@10 %.4f MRR@10 %.4f", static_cast<long long>(s.epoch),
                  ev.score, m["mrr@10"].is_number() ? m["mrr@10"].get<double>() : 0.0);
    ev.message = std::string(buf) + " (" + e_.dev_scope.name + ", " + m["evaluated"].dump() + " queries)";
  }
  ev.score = finetune_util::root_score(ev.score, comm_);
  return ev;
}

// What a rank trains on, for check_same_job.
std::vector<std::pair<std::string, uint64_t>> fingerprints(const RetrievalSets& d, const Encoded& e) {
  finetune_util::Fingerprint docs, train, dev;
  docs.add(e.docs);
  train.add(e.q_train);
  train.add(d.train_pos);
  dev.add(e.q_dev);
  dev.add(e.dev_scope.doc_rows);
  std::string dev_ids;
  for (const auto& q : d.dev)
    for (const auto& p : q.positive_ids) dev_ids += p + '\n';
  dev.add(std::vector<char>(dev_ids.begin(), dev_ids.end()));
  return {{"documents (--corpus and the positives' texts)", docs.value()},
          {"training queries (--train)", train.value()},
          {"dev queries (--dev)", dev.value()}};
}

}  // namespace

FinetuneResult finetune_retrieval(const FinetuneOptions& o, Communicator& comm) {
  RetrievalModel m;
  m.colbert = o.task == FinetuneTask::kColbert;
  check_options(o, m.colbert);
  const RetrievalSets d = read_sets(o);

  // ---- model: the encoder of the checkpoint (heads dropped) ----
  LoadOptions lo;
  lo.zero_copy = false;
  lo.allow_quantized = false;  // fp32 only: a quantized checkpoint is an Error
  LoadedModel src = load_model_dir(o.model_dir, lo);
  const std::string tok_path = o.model_dir + "/tokenizer.json";
  if (!fs::exists(tok_path)) throw Error(o.model_dir + ": finetune needs tokenizer.json in the model directory");
  const Tokenizer tok = Tokenizer::from_file(tok_path);
  m.pooling = pooling_of(o, src);
  if (!m.colbert && m.pooling == EmbedPooling::kMax) throw Error("finetune: max pooling is not supported for training");
  m.cfg = src.config;
  m.cfg.architectures = {"ModernBertModel"};
  m.cfg.id2label.clear();
  m.cfg.label2id.clear();
  m.cfg.raw.erase("num_labels");
  Weights w(m.cfg, HeadSet{});
  for (const auto& sp : w.specs()) {
    if (!src.weights.has(sp.name) || src.weights.spec(sp.name).shape != sp.shape)
      throw Error(o.model_dir + ": the checkpoint has no parameter " + sp.name + " of the expected shape");
    std::copy_n(src.weights.param(sp.name), sp.numel(), w.mutable_param(sp.name));
  }
  m.H = m.cfg.hidden_size;
  m.Dc = m.colbert ? o.colbert_dim : 0;
  if (m.colbert) m.proj = initial_projection(o, src.sentence_transformers, m.H, m.Dc, comm.is_root());
  { LoadedModel drop = std::move(src); }

  // ---- tokenisation ----
  m.doc_len = o.doc_max_length ? o.doc_max_length : o.max_length;
  if (m.doc_len > m.cfg.max_position_embeddings || o.query_max_length > m.cfg.max_position_embeddings)
    throw Error("finetune: a max length exceeds the model's max_position_embeddings (" +
                std::to_string(m.cfg.max_position_embeddings) + ")");
  const Encoded e = encode_sets(o, tok, d, m.doc_len);

  // ---- data parallel: every rank runs this job ----
  finetune_util::check_same_job(o, fingerprints(d, e), comm);

  // ---- training: the encoder, and (ColBERT) the projection with its own optimizer ----
  std::ofstream log = finetune_util::open_output(o, tok_path, comm);
  const OptimizerConfig oc = finetune_util::optimizer_config(o);
  // ZeRO-1 shards the encoder's moments; the ColBERT projection's (Dc x H) stay whole on every rank.
  const train::ZeroShards zero = train::zero_shards(w.specs(), o.zero_stage, comm.size(), "finetune");
  Optimizer opt(w.specs(), oc, zero.first_tensor(comm.rank()), zero.last_tensor(comm.rank(), w.specs().size()));
  train::report_optimizer_memory("finetune", zero, w.num_params(), o.zero_stage, comm);
  std::vector<ParamSpec> proj_spec;
  if (m.colbert) proj_spec.push_back({"1_Dense.linear.weight", {m.Dc, m.H}, InitRule::kIn, true});
  Optimizer proj_opt(proj_spec, oc);
  m.loss.colbert = m.colbert;
  m.loss.cls_pooling = m.pooling == EmbedPooling::kCls;
  m.loss.temperature = o.temperature > 0 ? o.temperature : m.colbert ? 1.0 : 0.05;
  m.loss.proj = m.proj.data();
  m.loss.proj_dim = m.Dc;
  RetrievalTask task(o, d, e, m, w, comm);
  std::vector<float> grads(w.num_params());
  std::vector<train::ParamGroup> groups = {{&opt, w.data(), grads.data(), grads.size(), zero.elements}};
  if (m.colbert) groups.push_back({&proj_opt, m.proj.data(), task.proj_grad(), m.proj.size()});
  const int64_t steps_per_epoch = (static_cast<int64_t>(d.train.size()) + o.batch_size - 1) / o.batch_size;
  const train::LoopConfig lc = finetune_util::loop_config(o, steps_per_epoch, log, "ndcg@10", comm);
  return finetune_util::result_of(train::run_training_loop(lc, task, groups), "ndcg@10");
}

}  // namespace modernbert
