// modernbert finetune --task embedding | colbert: contrastive fine-tuning of the encoder for
// retrieval with in-batch negatives (see include/modernbert/finetune.h).
//
// One optimizer step = a batch of queries and their positives, encoded together as ONE unpadded
// batch (queries first, then the distinct positive documents), so a single forward_hidden /
// backward_hidden pair serves both sides:
// (retrieval_batch_loss in src/train/contrastive.cpp: pooling + InfoNCE, or projection + MaxSim).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/file_io.h"
#include "modernbert/finetune.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "modernbert/search.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"
#include "modernbert/trainer.h"
#include "modernbert/weights.h"
#include "tasks/finetune_progress.h"
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
  if (!o.pooling.empty()) return parse_embed_pooling(o.pooling);
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

}  // namespace

FinetuneResult finetune_retrieval(const FinetuneOptions& o) {
  const bool colbert = o.task == "colbert";
  if (o.epochs < 1) throw Error("finetune: --epochs must be >= 1");
  if (o.batch_size < 2) throw Error("finetune: --batch-size must be >= 2 for in-batch negatives");
  if (o.max_length < 2 || o.query_max_length < 2 || (o.doc_max_length != 0 && o.doc_max_length < 2))
    throw Error("finetune: --max-length / --query-max-length / --doc-max-length must be >= 2");
  if (!(o.lr > 0)) throw Error("finetune: --lr must be > 0");
  if (o.temperature < 0) throw Error("finetune: --temperature must be > 0");
  if (o.warmup_ratio < 0 || o.warmup_ratio > 1) throw Error("finetune: --warmup-ratio must be in [0, 1]");
  if (o.schedule != "linear" && o.schedule != "wsd") throw Error("finetune: --schedule must be linear or wsd");
  if (o.optimizer != "adamw" && o.optimizer != "stableadamw")
    throw Error("finetune: --optimizer must be adamw or stableadamw");
  if (colbert && o.colbert_dim < 1) throw Error("finetune: --colbert-dim must be >= 1");
  if (!colbert && !o.pooling.empty() && o.pooling != "cls" && o.pooling != "mean")
    throw Error("finetune: --pooling must be cls or mean");
  if (o.out.empty()) throw Error("finetune: --out is required");
  const double tau = o.temperature > 0 ? o.temperature : colbert ? 1.0 : 0.05;

  // ---- data ----
  std::vector<RetrievalDoc> corpus;
  if (!o.corpus.empty()) corpus = read_corpus(o.corpus, o.lossy_utf8);
  std::unordered_map<std::string, int64_t> doc_index;
  for (size_t i = 0; i < corpus.size(); ++i) doc_index[corpus[i].id] = static_cast<int64_t>(i);
  const auto train = read_training_queries(o.train, corpus, doc_index, !o.corpus.empty(), o.lossy_utf8);
  const auto dev = read_training_queries(o.dev, corpus, doc_index, !o.corpus.empty(), o.lossy_utf8);
  // Training positives as corpus rows; a positive id that is not in the corpus is an error here
  // (a silent drop would train on fewer pairs than the user thinks).
  std::vector<std::vector<int64_t>> train_pos(train.size());
  for (size_t i = 0; i < train.size(); ++i)
    for (const auto& id : train[i].positive_ids) {
      auto it = doc_index.find(id);
      if (it == doc_index.end())
        throw Error(o.train + ": query '" + train[i].qid + "': positive id '" + id + "' is not in the corpus " +
                    o.corpus);
      train_pos[i].push_back(it->second);
    }

  // ---- model: the encoder of the checkpoint (heads dropped) ----
  LoadOptions lo;
  lo.zero_copy = false;
  LoadedModel src = load_model_dir(o.model_dir, lo);
  const std::string tok_path = o.model_dir + "/tokenizer.json";
  if (!fs::exists(tok_path)) throw Error(o.model_dir + ": finetune needs tokenizer.json in the model directory");
  const Tokenizer tok = Tokenizer::from_file(tok_path);
  const EmbedPooling pooling = pooling_of(o, src);
  if (!colbert && pooling == EmbedPooling::kMax) throw Error("finetune: max pooling is not supported for training");
  ModelConfig cfg = src.config;
  cfg.architectures = {"ModernBertModel"};
  cfg.id2label.clear();
  cfg.label2id.clear();
  cfg.raw.erase("num_labels");
  Weights w(cfg, HeadSet{});
  for (const auto& sp : w.specs()) {
    if (!src.weights.has(sp.name) || src.weights.spec(sp.name).shape != sp.shape)
      throw Error(o.model_dir + ": the checkpoint has no parameter " + sp.name + " of the expected shape");
    std::copy_n(src.weights.param(sp.name), sp.numel(), w.mutable_param(sp.name));
  }
  const int64_t H = cfg.hidden_size;
  const int64_t Dc = colbert ? o.colbert_dim : 0;
  // ColBERT projection [Dc, H]: the checkpoint's Dense when it has one of this shape (continued
  // fine-tuning), else nn.Linear's default init U(±1/sqrt(H)) as PyLate gets it.
  std::vector<float> proj;
  if (colbert) {
    const auto& st = src.sentence_transformers;
    if (st.dense_out > 0 && st.dense_bias.empty() && st.dense_in == H && st.dense_out == Dc) {
      proj = st.dense_weight;
    } else {
      if (st.dense_out > 0 && o.progress)
        std::fprintf(stderr, "finetune: the checkpoint's Dense module (%lld -> %lld%s) is not reused\n",
                     static_cast<long long>(st.dense_in), static_cast<long long>(st.dense_out),
                     st.dense_bias.empty() ? "" : ", with bias");
      proj.resize(static_cast<size_t>(Dc * H));
      uint64_t s = o.seed ^ 0xC01BE27ull;
      const double bound = 1.0 / std::sqrt(static_cast<double>(H));
      for (auto& v : proj) v = static_cast<float>((2.0 * finetune_util::uniform01(s) - 1.0) * bound);
    }
  }
  { LoadedModel drop = std::move(src); }

  // ---- tokenisation ----
  const int64_t doc_len = o.doc_max_length ? o.doc_max_length : o.max_length;
  if (doc_len > cfg.max_position_embeddings || o.query_max_length > cfg.max_position_embeddings)
    throw Error("finetune: a max length exceeds the model's max_position_embeddings (" +
                std::to_string(cfg.max_position_embeddings) + ")");
  auto encode = [&](const std::string& text, int64_t max_len) {
    EncodeOptions eo;
    eo.max_length = static_cast<size_t>(max_len);
    Encoding e = tok.encode(text, eo);
    if (e.ids.empty()) e.ids.push_back(0);
    return e.ids;
  };
  std::vector<std::vector<int32_t>> doc_ids(corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) doc_ids[i] = encode(o.document_prompt + corpus[i].text, doc_len);
  std::vector<std::vector<int32_t>> q_train(train.size()), q_dev(dev.size());
  for (size_t i = 0; i < train.size(); ++i) q_train[i] = encode(o.query_prompt + train[i].query, o.query_max_length);
  for (size_t i = 0; i < dev.size(); ++i) q_dev[i] = encode(o.query_prompt + dev[i].query, o.query_max_length);

  // Dev scope: the documents of the dev split when the corpus has splits, else all of them.
  SearchScope dev_scope{"dev", {}};
  for (size_t i = 0; i < corpus.size(); ++i)
    if (corpus[i].split == "dev") dev_scope.doc_rows.push_back(static_cast<int64_t>(i));
  if (dev_scope.doc_rows.empty()) {
    dev_scope.name = "full";
    for (size_t i = 0; i < corpus.size(); ++i) dev_scope.doc_rows.push_back(static_cast<int64_t>(i));
  } else {
    dev_scope.name = "closed:dev";
  }

  // ---- output ----
  fs::create_directories(o.out);
  fs::copy_file(tok_path, o.out + "/tokenizer.json", fs::copy_options::overwrite_existing);
  std::ofstream log(o.out + "/finetune_log.jsonl", std::ios::trunc);
  if (!log) throw Error(o.out + "/finetune_log.jsonl: cannot open for writing");

  // ---- optimisation ----
  const OptimizerConfig oc = finetune_util::optimizer_config(o);
  Optimizer opt(w.specs(), oc);
  std::vector<ParamSpec> proj_spec;
  if (colbert) proj_spec.push_back({"1_Dense.linear.weight", {Dc, H}, InitRule::kIn, true});
  Optimizer proj_opt(proj_spec, oc);
  const int64_t N = static_cast<int64_t>(train.size());
  const int64_t steps_per_epoch = (N + o.batch_size - 1) / o.batch_size;
  const int64_t total = steps_per_epoch * o.epochs;
  const ScheduleConfig sc = finetune_util::schedule_config(o, total);

  TrainModel tm(w);
  Encoder enc(w);
  std::vector<float> grads(w.num_params()), proj_grad(proj.size());
  std::vector<float> dhidden;
  RetrievalLoss loss_spec;
  loss_spec.colbert = colbert;
  loss_spec.cls_pooling = pooling == EmbedPooling::kCls;
  loss_spec.temperature = tau;
  loss_spec.proj = proj.data();
  loss_spec.proj_dim = Dc;
  FinetuneResult res;
  res.metric_name = "ndcg@10";

  // Dev: encode the dev queries and the scope's documents with the current weights, search
  // exactly (cosine / MaxSim), score with the shared ranking metrics.
  auto evaluate_dev = [&]() -> json {
    SentenceTransformersInfo st;
    st.dense_weight = proj;
    st.dense_in = H;
    st.dense_out = Dc;
    std::vector<float> hidden;
    auto run = [&](const std::vector<const std::vector<int32_t>*>& seqs, std::vector<float>& vecs,
                   std::vector<int64_t>& off) {
      off.assign(1, 0);
      size_t i = 0;
      while (i < seqs.size()) {
        Batch b;
        while (i < seqs.size() && (b.num_seqs() == 0 || b.num_tokens() + static_cast<int64_t>(seqs[i]->size()) <= 8192))
          b.add(*seqs[i++]);
        enc.forward(b, hidden);
        int64_t D = 0;
        std::vector<float> v;
        if (colbert) {
          v = colbert_vectors(hidden.data(), b.num_tokens(), H, &st, &D);
          for (int64_t s = 0; s < b.num_seqs(); ++s) off.push_back(off.back() + b.seq_len(s));
        } else {
          EmbedOptions eo;
          eo.pooling = pooling;
          eo.normalize = true;
          v = sentence_embeddings(b, hidden.data(), H, eo, &D);
        }
        vecs.insert(vecs.end(), v.begin(), v.end());
      }
    };
    std::vector<const std::vector<int32_t>*> qs, ds;
    for (const auto& q : q_dev) qs.push_back(&q);
    for (int64_t r : dev_scope.doc_rows) ds.push_back(&doc_ids[static_cast<size_t>(r)]);
    std::vector<float> QV, DV;
    std::vector<int64_t> qoff, doff;
    run(qs, QV, qoff);
    run(ds, DV, doff);
    std::vector<std::vector<int64_t>> ranks;
    const int64_t depth = std::max<int64_t>(o.eval_depth, 10);
    if (colbert)
      ranks = maxsim_search(QV, qoff, DV, doff, Dc, depth);
    else
      ranks = exact_search(QV.data(), static_cast<int64_t>(q_dev.size()), DV.data(),
                           static_cast<int64_t>(dev_scope.doc_rows.size()), H, depth);
    json j = score_rankings(corpus, dev_scope, dev, ranks);
    j["scope"] = dev_scope.name;
    return j;
  };

  finetune_util::EpochTracker tracker(res, log, o.patience);
  finetune_util::StepProgress progress(o.progress, total);
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto order = shuffled(static_cast<size_t>(N), o.seed * 1000003ull + static_cast<uint64_t>(epoch));
    double epoch_loss = 0;
    int64_t epoch_batches = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      const size_t lo_i = static_cast<size_t>(s * o.batch_size);
      const size_t hi_i = std::min(static_cast<size_t>(N), lo_i + static_cast<size_t>(o.batch_size));
      if (hi_i - lo_i < 2) continue;  // a lone query has no in-batch negative
      // Queries, one positive each (drawn when a query has several), distinct documents.
      std::vector<size_t> qidx(order.begin() + static_cast<std::ptrdiff_t>(lo_i),
                               order.begin() + static_cast<std::ptrdiff_t>(hi_i));
      std::vector<int64_t> docs, target;
      std::map<int64_t, int64_t> slot;
      uint64_t rs = o.seed ^ (static_cast<uint64_t>(res.steps + 1) * 0x9E3779B97F4A7C15ull);
      for (size_t qi : qidx) {
        const auto& pos = train_pos[qi];
        const int64_t row = pos[pos.size() == 1 ? 0 : splitmix64(rs) % pos.size()];
        auto it = slot.find(row);
        if (it == slot.end()) {
          it = slot.emplace(row, static_cast<int64_t>(docs.size())).first;
          docs.push_back(row);
        }
        target.push_back(it->second);
      }
      const int64_t Bq = static_cast<int64_t>(qidx.size()), Bd = static_cast<int64_t>(docs.size());
      std::vector<uint8_t> exclude(static_cast<size_t>(Bq * Bd), 0);
      for (int64_t i = 0; i < Bq; ++i)
        for (int64_t p : train_pos[qidx[static_cast<size_t>(i)]]) {
          auto it = slot.find(p);
          if (it != slot.end() && it->second != target[static_cast<size_t>(i)])
            exclude[static_cast<size_t>(i * Bd + it->second)] = 1;
        }
      Batch b;
      for (size_t qi : qidx) b.add(q_train[qi]);
      for (int64_t r : docs) b.add(doc_ids[static_cast<size_t>(r)]);
      const int64_t T = b.num_tokens();
      const float* hidden = tm.forward_hidden(b);
      dhidden.resize(static_cast<size_t>(T * H));
      const double loss = retrieval_batch_loss(hidden, b, H, Bq, target, exclude, loss_spec, dhidden.data(),
                                               colbert ? proj_grad.data() : nullptr);
      if (!std::isfinite(loss))
        throw Error("finetune: the loss became " + std::to_string(loss) + " at step " + std::to_string(res.steps + 1) +
                    " (lower --lr?)");
      std::fill(grads.begin(), grads.end(), 0.0f);
      tm.backward_hidden(b, dhidden.data(), grads.data());
      const double lr_t = o.lr * lr_multiplier(sc, static_cast<double>(res.steps));
      opt.step(w.data(), grads.data(), lr_t);
      if (colbert) proj_opt.step(proj.data(), proj_grad.data(), lr_t);
      ++res.steps;
      epoch_loss += loss;
      ++epoch_batches;
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tps = static_cast<double>(T) / std::max(dt, 1e-9);
      log << json{{"type", "step"}, {"step", res.steps}, {"epoch", epoch}, {"loss", loss},       {"lr", lr_t},
                  {"queries", Bq},  {"documents", Bd},   {"tokens", T},    {"tokens_per_s", tps}}
                 .dump()
          << "\n";
      progress.step(res.steps, epoch, loss, lr_t, tps);
    }
    json m = evaluate_dev();
    const double metric =
        m["ndcg@10"].is_number() ? m["ndcg@10"].get<double>() : -std::numeric_limits<double>::infinity();
    const bool improved =
        tracker.end_epoch(epoch, metric, m, epoch_loss / static_cast<double>(std::max<int64_t>(1, epoch_batches)));
    char buf[128];
    std::snprintf(buf, sizeof buf, "finetune: epoch %lld dev nDCG@10 %.4f MRR@10 %.4f", static_cast<long long>(epoch),
                  metric, m["mrr@10"].is_number() ? m["mrr@10"].get<double>() : 0.0);
    progress.message(std::string(buf) + " (" + dev_scope.name + ", " + m["evaluated"].dump() + " queries)" +
                     (improved ? " (best, saved)" : ""));
    if (improved) {
      save_model_dir(o.out, cfg, w);
      save_st_files(o.out, colbert, pooling, H, doc_len, o, proj, Dc);
    } else if (tracker.patience_exhausted()) {
      progress.message("finetune: no improvement for " + std::to_string(o.patience) + " epochs, stopping");
      break;
    }
  }
  tracker.finish();
  return res;
}

}  // namespace modernbert
