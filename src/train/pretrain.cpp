// The MLM pre-training run (spec §6): documents → tokens → greedy best-fit packing → 30% masking
// → micro-batches with gradient accumulation → StableAdamW under warmup-stable-decay, with
// batch-size warm-up, optional clipping, a loss-spike/NaN guard, held-out evaluation, JSONL
// metrics, and atomic checkpoints (HF model dir + trainer state) that resume bit-identically.
// The step loop itself is train::run_training_loop; this file supplies the data, the MLM
// forward/backward, the evaluation and the checkpoints (PretrainTask), and the run's setup.
//
// Bit-exact resume: everything a step depends on is either saved (parameters F32, moments,
// optimizer step, tokens seen, document cursor + epoch, the packer's buffer, the masking row
// serial, the spike guard's EMA as exact hex floats) or a pure function of the config (document
// order per epoch, masks per row serial). Reductions have fixed orders (kernels/backend.h).
//
// Data parallelism (#16): every rank runs the same document stream, packer and masking (cheap
// integer work), so each rank holds the step's whole global batch and the loop gives it a contiguous
// share of the micro-batches; the loss denominator is the step's whole masked count, and dropout
// masks are keyed by the global row, so the ranks compute exactly the terms one process would.
// Rank 0 alone touches the output directory; checkpoints hold the whole (gathered) optimizer
// state, so a run resumes at any world size or ZeRO stage.
#include "modernbert/pretrain.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/mlm_data.h"
#include "modernbert/model_dir.h"
#include "modernbert/optimizer.h"
#include "modernbert/safetensors.h"
#include "modernbert/schedule.h"
#include "modernbert/tiling.h"
#include "modernbert/token_ids.h"
#include "modernbert/tokenizer.h"
#include "modernbert/train_model.h"
#include "modernbert/training_loop.h"
#include "train/pretrain_data.h"
#include "train/pretrain_state.h"
#include "train/run_dir.h"

namespace fs = std::filesystem;

namespace modernbert {
namespace {

// The model config this invocation asks for (what a fresh start builds, before any weights load).
ModelConfig invocation_model_config(const PretrainConfig& pc) {
  ModelConfig c;
  if (!pc.init_from.empty()) {
    c = ModelConfig::from_file(pc.init_from + "/config.json");
  } else {
    const bool preset = pc.model_config == "tiny" || pc.model_config == "base" || pc.model_config == "large";
    c = preset ? ModelConfig::preset(pc.model_config) : ModelConfig::from_file(pc.model_config);
    c.architectures = {"ModernBertForMaskedLM"};
  }
  if (pc.global_rope_theta > 0) c.global_rope_theta = pc.global_rope_theta;
  if (pc.local_rope_theta > 0) c.local_rope_theta = pc.local_rope_theta;
  c.raw.erase("rope_parameters");  // a stale v5 entry would override the new thetas on reload
  return c;
}

// ---- setup ----------------------------------------------------------------------------------------

// Training and held-out documents (held out: eval_data, else the first eval_documents of data).
struct Documents {
  std::optional<Tokenizer> tok;
  std::vector<std::vector<int32_t>> train, eval;
};

Documents read_documents(const PretrainConfig& pc) {
  Documents d;
  if (!pc.tokenizer.empty()) d.tok = Tokenizer::from_file(pc.tokenizer);
  const bool split = pc.long_documents == LongDocuments::kSplit;
  const Tokenizer* tok = d.tok ? &*d.tok : nullptr;
  d.train = train::load_documents(pc.data, tok, pc.seq_len, split, pc.lossy_utf8);
  if (!pc.eval_data.empty()) {
    d.eval = train::load_documents(pc.eval_data, tok, pc.seq_len, split, pc.lossy_utf8);
  } else if (pc.eval_documents > 0) {
    const size_t n = std::min(d.train.size() / 2, static_cast<size_t>(pc.eval_documents));
    d.eval.assign(d.train.begin(), d.train.begin() + static_cast<long>(n));
    d.train.erase(d.train.begin(), d.train.begin() + static_cast<long>(n));
  }
  if (d.train.empty()) throw Error("pretrain: the data has no documents");
  return d;
}

// The weights to start from: the latest checkpoint (--resume), init_from, or a fresh init
// (optionally tiled from a smaller model). `mcfg` receives the model config.
std::unique_ptr<Weights> initial_weights(const PretrainConfig& pc, const std::string& checkpoint, ModelConfig& mcfg) {
  auto load_into = [&](const std::string& dir, ModelConfig c) {
    LoadOptions lo;
    lo.zero_copy = false;
    lo.allow_quantized = false;  // fp32 only: a quantized checkpoint is an Error
    LoadedModel lm = load_model_dir(dir, lo);
    lm.weights.make_contiguous();
    if (!lm.weights.heads().mlm) throw Error("pretrain: " + dir + " has no MLM head");
    auto nw = std::make_unique<Weights>(c, lm.weights.heads());
    if (nw->num_params() != lm.weights.num_params()) throw Error("pretrain: parameter layout of " + dir + " differs");
    std::memcpy(nw->data(), lm.weights.data(), nw->num_params() * sizeof(float));
    return nw;
  };
  if (!checkpoint.empty()) {
    mcfg = ModelConfig::from_file(checkpoint + "/config.json");
    return load_into(checkpoint, mcfg);
  }
  mcfg = invocation_model_config(pc);
  if (!pc.init_from.empty()) return load_into(pc.init_from, mcfg);
  auto w = std::make_unique<Weights>(mcfg, HeadSet::parse("mlm"));
  init_weights(*w, pc.seed);
  if (!pc.tile_from.empty()) {
    LoadOptions lo;
    lo.zero_copy = false;
    lo.allow_quantized = false;  // fp32 only: a quantized checkpoint is an Error
    LoadedModel src = load_model_dir(pc.tile_from, lo);
    src.weights.make_contiguous();
    tile_weights(src.weights, *w);
  }
  return w;
}

MaskingConfig masking_config(const PretrainConfig& pc, const std::optional<Tokenizer>& tok, int64_t vocab_size) {
  MaskingConfig mask;
  mask.probability = pc.mlm_probability;
  mask.mask_token_id = pc.mask_token_id >= 0 ? pc.mask_token_id : 50284;
  if (pc.mask_token_id < 0 && tok) {
    if (auto id = tok->token_to_id("[MASK]")) mask.mask_token_id = *id;
  }
  if (mask.mask_token_id >= vocab_size)
    throw Error("pretrain: mask_token_id " + std::to_string(mask.mask_token_id) + " is outside the vocabulary");
  return mask;
}

// The documents' ids lie in the vocabulary; a note when rows are longer than the model's positions.
void check_documents(const PretrainConfig& pc, const std::vector<std::vector<int32_t>>& docs, const ModelConfig& mcfg) {
  if (pc.seq_len > mcfg.max_position_embeddings)
    std::fprintf(stderr, "pretrain: note: seq_len %lld exceeds max_position_embeddings %lld\n",
                 static_cast<long long>(pc.seq_len), static_cast<long long>(mcfg.max_position_embeddings));
  for (const auto& d : docs)
    for (int32_t id : d)
      if (id < 0 || id >= mcfg.vocab_size)
        throw Error("pretrain: token id " + std::to_string(id) + " outside the vocabulary [0, " +
                    std::to_string(mcfg.vocab_size) + ")");
}

// Everything a run holds: model, optimizer, data pipeline, identity and counters. Not movable (the
// packer reads the document stream through `this`).
struct Run {
  Run(const PretrainConfig& pc_, Communicator& comm_, Documents docs, ModelConfig mcfg_, std::unique_ptr<Weights> w_)
      : pc(pc_),
        comm(comm_),
        root(comm_.is_root()),
        mcfg(std::move(mcfg_)),
        w(std::move(w_)),
        zero(train::zero_shards(w->specs(), pc.zero_stage, comm_.size(), "pretrain")),
        tok(std::move(docs.tok)),
        eval_docs(std::move(docs.eval)),
        mask(masking_config(pc, tok, mcfg.vocab_size)),
        opt(w->specs(), pc.optimizer, zero.first_tensor(comm_.rank()),
            zero.last_tensor(comm_.rank(), w->specs().size())),
        model(*w),
        stream(std::move(docs.train), pc.seed, true),
        buffer(pc.packing_buffer > 0 ? pc.packing_buffer : 5 * pc.global_batch_size),
        packer(pc.seq_len, buffer, [this] { return stream.next(); }) {
    warm.max_batches = pc.global_batch_size / pc.micro_batch_size;
    warm.warmup_tokens = pc.batch_warmup_tokens;
    sched = pc.schedule;
    if (sched.total_tokens <= 0) sched.total_tokens = pc.max_tokens;
    // The run's identity; a resume must match the run it continues (or be told to ignore it).
    identity = train::run_identity(pc, invocation_model_config(pc), mask.mask_token_id, buffer, sched.total_tokens);
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  const PretrainConfig& pc;
  Communicator& comm;
  const bool root;  // rank 0: the one that writes the output directory and prints notes
  ModelConfig mcfg;
  std::unique_ptr<Weights> w;
  train::ZeroShards zero;  // ZeRO-1: the ranks' tensor ranges and element offsets; empty otherwise
  std::optional<Tokenizer> tok;
  std::vector<std::vector<int32_t>> eval_docs;
  MaskingConfig mask;
  Optimizer opt;
  TrainModel model;
  DocumentStream stream;
  int64_t buffer;
  SequencePacker packer;
  BatchWarmup warm;
  ScheduleConfig sched;
  nlohmann::json identity;
  const int64_t threads = kernels::default_pool().size();
  const std::string gemm = kernels::gemm_backend_name();
  std::string run_id;
  train::TrainerCounters counters;
};

// ---- resume ---------------------------------------------------------------------------------------

// A saved identity against this invocation's: differences are an error unless
// --ignore-run-mismatch (then a warning).
void check_identity(const Run& r, const nlohmann::json& saved, const std::string& where) {
  if (saved.is_null()) {
    if (r.root)
      std::fprintf(stderr, "pretrain: note: %s stores no run identity (older format); not compared\n", where.c_str());
    return;
  }
  const auto diffs = train::identity_differences(saved, r.identity);
  if (diffs.empty()) return;
  std::string msg;
  for (const auto& d : diffs) msg += "\n  " + d;
  if (!r.pc.ignore_run_mismatch)
    throw Error("pretrain: --resume: this invocation differs from the run in " + r.pc.output_dir + " (" + where +
                "):" + msg + "\nresume with the same settings, or pass --ignore-run-mismatch to continue anyway");
  if (r.root) std::fprintf(stderr, "pretrain: warning: --ignore-run-mismatch: resuming although%s\n", msg.c_str());
}

// Restores the counters, moments and data position of checkpoint `dir`; returns the metrics'
// resume record.
nlohmann::json resume_from(Run& r, const std::string& dir) {
  train::TrainerStateLimits lim;
  lim.num_params = static_cast<int64_t>(r.w->num_params());
  lim.num_documents = static_cast<int64_t>(r.stream.size());
  lim.vocab_size = r.mcfg.vocab_size;
  lim.seq_len = r.pc.seq_len;
  // The file holds the whole moments; a ZeRO-1 rank keeps its shard.
  train::MomentRange range;
  range.first = static_cast<int64_t>(r.opt.offset());
  range.count = static_cast<int64_t>(r.opt.size());
  train::TrainerState ts = train::read_trainer_state(
      dir + "/trainer_state.safetensors", lim, r.opt.m().data(), r.opt.v().data(),
      [&](const nlohmann::json& saved) { check_identity(r, saved, dir); }, range);
  const train::TrainerCounters& st = r.counters = ts.counters;
  r.run_id = ts.run_id.empty() ? train::run_id_of(r.identity) : ts.run_id;
  r.opt.set_step_count(st.optimizer_step);
  r.stream.seek(st.epoch, st.cursor);
  r.packer.set_buffer(std::move(ts.packer_buffer));
  const nlohmann::json record = {{"event", "resume"}, {"step", st.step}, {"checkpoint", fs::path(dir).filename()}};
  if (!r.root) return record;
  const int64_t ranks = r.comm.size();
  if (ts.world_size > 0 && ts.world_size != ranks)
    std::fprintf(stderr,
                 "pretrain: note: the run was saved by %lld rank(s), this job has %lld: it continues the same data "
                 "order and schedule (each step's global batch is unchanged); the gradient sums are bit-identical "
                 "to the %lld-rank run's while ranks 1.. hold at most one micro-batch per step in both, else they "
                 "differ by float rounding\n",
                 static_cast<long long>(ts.world_size), static_cast<long long>(ranks),
                 static_cast<long long>(ts.world_size));
  if (ts.threads > 0 && ts.threads != r.threads)
    std::fprintf(stderr,
                 "pretrain: note: the run used %lld threads, this process %lld: the continuation is not bit-identical "
                 "to an uninterrupted run (pass --threads %lld for that)\n",
                 static_cast<long long>(ts.threads), static_cast<long long>(r.threads),
                 static_cast<long long>(ts.threads));
  if (!ts.gemm.empty() && ts.gemm != r.gemm)
    std::fprintf(stderr, "pretrain: note: the run used the %s GEMM backend, this process %s: not bit-identical\n",
                 ts.gemm.c_str(), r.gemm.c_str());
  std::fprintf(stderr, "pretrain: resumed from %s (step %lld, %.0f tokens)\n", dir.c_str(),
               static_cast<long long>(st.step), st.tokens);
  return record;
}

// Continues the latest checkpoint (--resume), restarts a run killed before its first checkpoint
// as the same run, or starts a new one; rank 0 writes run.json and train_config.json. Returns the
// record that opens this invocation's metrics (null for a new run).
nlohmann::json open_run(Run& r, const std::string& checkpoint) {
  const PretrainConfig& pc = r.pc;
  const std::string run_json = pc.output_dir + "/run.json";
  nlohmann::json resume_record;
  if (!checkpoint.empty()) {
    resume_record = resume_from(r, checkpoint);
  } else if (!r.root) {
    // Only rank 0 reads the output directory (run.json); the run id matters only where files are written.
    r.run_id = train::run_id_of(r.identity);
  } else if (pc.resume && fs::exists(run_json)) {
    nlohmann::json saved;
    try {
      saved = nlohmann::json::parse(read_file(run_json));
    } catch (const nlohmann::json::exception& e) {
      throw Error(run_json + ": invalid JSON: " + e.what());
    }
    check_identity(r, saved.value("identity", nlohmann::json()), run_json);
    r.run_id = saved.value("run_id", train::run_id_of(r.identity));
    resume_record = {{"event", "resume"}, {"step", 0}, {"checkpoint", nullptr}};
    std::fprintf(stderr, "pretrain: --resume: no checkpoint in %s yet; starting the run from step 0\n",
                 pc.output_dir.c_str());
  } else {
    r.run_id = train::run_id_of(r.identity);
  }
  if (r.root) {
    write_file_atomic(run_json, nlohmann::json{{"run_id", r.run_id}, {"identity", r.identity}}.dump(2) + "\n");
    write_file_atomic(pc.output_dir + "/train_config.json", pc.to_json().dump(2) + "\n");
  }
  return resume_record;
}

// ---- the task of the training loop ------------------------------------------------------------------

// Per step: batches_at(tokens) micro-batches of packed rows, masked with the row serial as the
// stream; each micro-batch's loss is over the step's masked count (so they sum to its mean).
class PretrainTask final : public train::TrainingTask {
 public:
  // `has_checkpoint`: whether the output directory holds a checkpoint already (rank 0's view, shared).
  PretrainTask(Run& r, bool has_checkpoint, nlohmann::json first_record_fields)
      : r_(r),
        pc_(r.pc),
        row_serial_(r.counters.row_serial),
        has_checkpoint_(has_checkpoint),
        first_fields_(std::move(first_record_fields)) {
    build_eval_rows();
  }

  bool evaluates() const { return !eval_rows_.empty(); }

  train::StepPlan plan_step(const train::LoopState& s, int64_t) override {
    const int64_t n_micro = r_.warm.batches_at(s.tokens);
    if (!r_.packer.next(n_micro * pc_.micro_batch_size, rows_))
      throw Error("pretrain: not enough data to fill " + std::to_string(n_micro * pc_.micro_batch_size) +
                  " rows (add documents or lower the batch size)");
    labels_.assign(rows_.size(), {});
    masked_ = 0;
    train::StepPlan plan;
    for (size_t i = 0; i < rows_.size(); ++i) {
      mlm_mask(rows_[i].ids, labels_[i], r_.mask, pc_.seed, row_serial_++);
      for (int32_t y : labels_[i]) masked_ += y != -100;
      plan.tokens += static_cast<int64_t>(rows_[i].ids.size());
    }
    // Nothing masked: no forward at all, the loop records a NaN loss and skips the update.
    const auto mb = static_cast<int64_t>(pc_.micro_batch_size);
    plan.micro_batches = masked_ == 0 ? 0 : (static_cast<int64_t>(rows_.size()) + mb - 1) / mb;
    return plan;
  }

  train::MicroResult forward_backward(const train::LoopState& s, int64_t micro, float* grads) override {
    const size_t r0 = static_cast<size_t>(micro * pc_.micro_batch_size);
    const TrainBatch tb = train::make_micro_batch(
        rows_, labels_, r0, std::min(rows_.size(), r0 + static_cast<size_t>(pc_.micro_batch_size)));
    // Dropout masks keyed by (seed, step, first row): a resumed run draws the same ones.
    r_.model.set_attention_output_dropout(
        pc_.attention_output_dropout, pc_.seed * 0x2545F4914F6CDD1Dull ^ (static_cast<uint64_t>(s.step) << 20) ^ r0);
    const LossResult lr = r_.model.forward_backward(tb, TaskType::kMlm, grads, static_cast<double>(masked_));
    return {lr.loss, lr.correct};
  }

  void before_update(const train::LoopState& s) override {
    // Test aid: die mid-step (after the gradient all-reduce, before the update); --kill-rank: one rank only.
    if (pc_.kill_at_step > 0 && s.step + 1 == pc_.kill_at_step &&
        (pc_.kill_rank < 0 || pc_.kill_rank == r_.comm.rank())) {
      if (r_.comm.size() > 1) {
        std::fprintf(stderr, "pretrain: rank %d: --kill-at-step %lld: SIGKILL (test aid)\n", r_.comm.rank(),
                     static_cast<long long>(pc_.kill_at_step));
        std::fflush(stderr);
      }
      std::raise(SIGKILL);
    }
    train::test_kill_point("step", s.step + 1);
  }

  void add_step_fields(const train::LoopState& s, const train::StepReport& rep, nlohmann::json& rec) override {
    rec["tokens"] = s.tokens;
    rec["accuracy"] = masked_ ? static_cast<double>(rep.correct) / static_cast<double>(masked_) : 0.0;
    rec["rows"] = rows_.size();
    rec["masked"] = masked_;
    if (!first_fields_.empty()) {  // this invocation's first record: the optimizer memory
      rec.update(first_fields_);
      first_fields_ = nlohmann::json::object();
    }
  }

  // Held-out MLM loss and accuracy (no dropout), micro-batch by micro-batch. Rank 0 alone (it alone
  // logs; the parameters are equal on every rank).
  train::EvalResult evaluate(const train::LoopState& s) override {
    if (!r_.root) return {};
    double sum = 0;
    int64_t count = 0, correct = 0;
    r_.model.set_attention_output_dropout(0.0, 0);
    for (size_t r0 = 0; r0 < eval_rows_.size(); r0 += static_cast<size_t>(pc_.micro_batch_size)) {
      const size_t r1 = std::min(eval_rows_.size(), r0 + static_cast<size_t>(pc_.micro_batch_size));
      TrainBatch tb = train::make_micro_batch(eval_rows_, eval_labels_, r0, r1);
      if (TrainModel::count_items(tb, TaskType::kMlm, 0) == 0) continue;
      const LossResult lr = r_.model.forward_loss(tb, TaskType::kMlm);
      sum += lr.loss_sum;
      count += lr.count;
      correct += lr.correct;
    }
    const double loss = count ? sum / static_cast<double>(count) : std::nan("");
    const double acc = count ? static_cast<double>(correct) / static_cast<double>(count) : std::nan("");
    train::EvalResult e;
    e.metrics = {{"eval_loss", loss}, {"eval_accuracy", acc}};
    char buf[128];
    std::snprintf(buf, sizeof buf, "pretrain: step %lld eval loss %.4f accuracy %.4f", static_cast<long long>(s.step),
                  loss, acc);
    e.message = buf;
    return e;
  }

  // Checkpoint: the HF model directory, then the trainer state (counters, moments, packer buffer),
  // written by rank 0 (ZeRO-1: after gathering every rank's moments, so the file holds all of them).
  void save(const train::LoopState& s) override {
    std::vector<float> all_m, all_v;
    const float* m = r_.opt.m().data();
    const float* v = r_.opt.v().data();
    if (!r_.zero.elements.empty()) {
      all_m = gather_to_root(r_.opt.m());
      all_v = gather_to_root(r_.opt.v());
      m = all_m.data();
      v = all_v.data();
    }
    has_checkpoint_ = true;
    if (!r_.root) return;
    train::save_checkpoint(pc_.output_dir, s.step, r_.run_id, pc_.keep_last, [&](const std::string& tmp) {
      save_model_dir(tmp, r_.mcfg, *r_.w);
      train::test_kill_point("before_state_write", s.step);
      train::TrainerState ts;
      ts.counters = counters(s);
      ts.packer_buffer = r_.packer.buffer();
      ts.run_id = r_.run_id;
      ts.identity = r_.identity;
      ts.threads = r_.threads;
      ts.world_size = r_.comm.size();
      ts.gemm = r_.gemm;
      train::write_trainer_state(tmp + "/trainer_state.safetensors", ts, m, v,
                                 static_cast<int64_t>(r_.w->num_params()));
    });
  }

  bool has_checkpoint() const override { return has_checkpoint_; }

 private:
  // ZeRO-1: every rank's shard of a moment to rank 0, in rank order (= layout order); the whole
  // layout there, empty elsewhere.
  std::vector<float> gather_to_root(const std::vector<float>& mine) {
    const std::vector<std::string> parts =
        r_.comm.gather_bytes(std::string(reinterpret_cast<const char*>(mine.data()), mine.size() * sizeof(float)), 0);
    if (!r_.root) return {};
    std::vector<float> all(r_.w->num_params());
    size_t at = 0;
    for (size_t q = 0; q < parts.size(); ++q) {
      const size_t n = parts[q].size() / sizeof(float);
      if (n != r_.zero.elements[q + 1] - r_.zero.elements[q] || at + n > all.size())
        throw Error("pretrain: rank " + std::to_string(q) + " sent " + std::to_string(n) +
                    " optimizer moments for a shard of " +
                    std::to_string(r_.zero.elements[q + 1] - r_.zero.elements[q]));
      std::memcpy(all.data() + at, parts[q].data(), n * sizeof(float));
      at += n;
    }
    return all;
  }

  train::TrainerCounters counters(const train::LoopState& s) const {
    train::TrainerCounters c;
    c.step = s.step;
    c.tokens = s.tokens;
    c.row_serial = row_serial_;
    c.ema = s.ema;
    c.ema_n = s.ema_n;
    c.skipped = s.skipped;
    c.optimizer_step = r_.opt.step_count();
    c.epoch = r_.stream.epoch();
    c.cursor = r_.stream.cursor();
    return c;
  }

  // Held-out rows: packed once (documents in order), masked at eval_mlm_probability.
  void build_eval_rows() {
    if (r_.eval_docs.empty() || pc_.eval_every <= 0) return;
    const auto& docs = r_.eval_docs;
    size_t next_doc = 0;
    SequencePacker ep(pc_.seq_len, static_cast<int64_t>(docs.size()) + 1,
                      [&] { return next_doc < docs.size() ? docs[next_doc++] : std::vector<int32_t>{}; });
    std::vector<PackedRow> one;
    while (static_cast<int64_t>(eval_rows_.size()) < pc_.eval_rows && ep.next(1, one)) eval_rows_.push_back(one[0]);
    MaskingConfig em = r_.mask;
    em.probability = pc_.eval_mlm_probability;
    for (size_t i = 0; i < eval_rows_.size(); ++i) {
      eval_labels_.emplace_back();
      mlm_mask(eval_rows_[i].ids, eval_labels_.back(), em, pc_.seed ^ 0xE7A1ull, i);
    }
  }

  Run& r_;
  const PretrainConfig& pc_;
  uint64_t row_serial_;
  std::vector<PackedRow> rows_, eval_rows_;
  std::vector<std::vector<int32_t>> labels_, eval_labels_;
  int64_t masked_ = 0;
  bool has_checkpoint_;
  nlohmann::json first_fields_;
};

// ---- the ranks of a job -------------------------------------------------------------------------

// Every rank must run the same computation: the run identity (data by content, model, seed, batch,
// optimizer, schedule) and the settings that shape the job's sequence of collectives. Each rank
// compares all ranks' settings with rank 0's (the same verdict everywhere), so a mismatch is an
// Error on every rank naming the field, before the first step.
void check_same_settings(const Run& r) {
  if (r.comm.size() == 1) return;
  const PretrainConfig& pc = r.pc;
  const nlohmann::json mine = {{"identity", r.identity},      {"max_steps", pc.max_steps},
                               {"max_tokens", pc.max_tokens}, {"save_every", pc.save_every},
                               {"resume", pc.resume},         {"ignore_run_mismatch", pc.ignore_run_mismatch},
                               {"zero_stage", pc.zero_stage}, {"sync_check_every", pc.sync_check_every}};
  const std::vector<std::string> all = r.comm.allgather_bytes(mine.dump());
  for (size_t q = 1; q < all.size(); ++q) {
    if (all[q] == all[0]) continue;
    std::string msg;
    for (const auto& d : train::json_differences(nlohmann::json::parse(all[0]), nlohmann::json::parse(all[q]), "rank 0",
                                                 "rank " + std::to_string(q)))
      msg += "\n  " + d;
    throw Error(
        "pretrain: the ranks of this job were started with different settings (every rank needs the same "
        "flags, config and data):" +
        msg);
  }
}

}  // namespace

// ---- the run --------------------------------------------------------------------------------------

PretrainResult pretrain(const PretrainConfig& pc, Communicator& comm) {
  if (pc.output_dir.empty()) throw Error("pretrain: output_dir is required");
  if (pc.data.empty()) throw Error("pretrain: data is required");
  if (pc.resume && pc.overwrite) throw Error("pretrain: give at most one of --resume / --overwrite");
  if (pc.zero_stage != 0 && pc.zero_stage != 1)
    throw Error("pretrain: zero_stage must be 0 or 1, got " + std::to_string(pc.zero_stage));
  if (pc.threads > 0) kernels::set_num_threads(static_cast<int>(pc.threads));  // the explicit setting
  const bool root = comm.is_root();
  // Rank 0 alone checks the output directory and picks the checkpoint --resume continues (the
  // latest complete one; none: the run starts over); every rank then loads that one. The directory
  // is created (and the run that --overwrite replaces removed) only once the data and the initial
  // weights have loaded: a run that cannot start changes nothing. An error on rank 0 here ends the
  // job (main.cpp aborts it) while the others wait in the all-gather.
  std::string checkpoint;
  if (root) {
    train::check_output_dir(pc.output_dir, pc.resume, pc.overwrite);
    const auto ckpts =
        pc.resume ? train::list_checkpoints(pc.output_dir) : std::vector<std::pair<int64_t, std::string>>{};
    checkpoint = ckpts.empty() ? std::string() : ckpts.back().second;
  }
  if (comm.size() > 1) checkpoint = comm.allgather_bytes(root ? checkpoint : std::string())[0];
  Documents docs = read_documents(pc);
  ModelConfig mcfg;
  std::unique_ptr<Weights> w = initial_weights(pc, checkpoint, mcfg);
  check_documents(pc, docs.train, mcfg);
  if (root) train::prepare_output_dir(pc.output_dir, pc.resume, pc.overwrite);
  Run run(pc, comm, std::move(docs), std::move(mcfg), std::move(w));
  check_same_settings(run);
  const nlohmann::json resume_record = open_run(run, checkpoint);
  const nlohmann::json memory =
      train::report_optimizer_memory("pretrain", run.zero, run.w->num_params(), pc.zero_stage, comm);

  // Metrics are only ever appended: a resumed run first records where it resumed, then re-logs the
  // steps after that checkpoint (readers keep the last record of each step). Rank 0 alone.
  const std::string metrics_path = pc.output_dir + "/metrics.jsonl";
  std::ofstream metrics;
  std::ostream no_metrics(nullptr);  // the other ranks' (discarded) log
  if (root) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) throw Error("pretrain: cannot open " + metrics_path + " for appending");
    if (!resume_record.is_null()) metrics << resume_record.dump() << "\n" << std::flush;
  }
  // The other ranks start once rank 0 has set up the directory (or failed: then the job ends here).
  if (comm.size() > 1) comm.barrier();

  PretrainTask task(run, !checkpoint.empty(), memory);
  train::LoopConfig lc;
  lc.label = "pretrain";
  lc.peak_lr = pc.optimizer.lr;
  lc.schedule = run.sched;
  lc.clock = train::LoopConfig::Clock::kTokens;
  lc.max_steps = pc.max_steps;
  lc.max_tokens = pc.max_tokens;
  lc.log_grad_norm = true;
  lc.grad_clip = pc.grad_clip;
  lc.skip_non_finite = true;
  lc.spike_factor = pc.spike_factor;
  lc.spike_warmup_steps = pc.spike_warmup_steps;
  lc.eval_every = task.evaluates() ? pc.eval_every : 0;
  lc.save_every = pc.save_every;
  lc.save_at_end = true;
  lc.log = root ? static_cast<std::ostream*>(&metrics) : &no_metrics;
  lc.comm = &comm;
  lc.sync_check_every = pc.sync_check_every;
  lc.log_every = pc.log_every;
  train::LoopState start;
  start.step = run.counters.step;
  start.tokens = run.counters.tokens;
  start.ema = run.counters.ema;
  start.ema_n = run.counters.ema_n;
  start.skipped = run.counters.skipped;
  std::vector<float> grads(run.w->num_params());
  const std::vector<train::ParamGroup> groups = {
      {&run.opt, run.w->data(), grads.data(), grads.size(), run.zero.elements}};
  const train::LoopResult out = train::run_training_loop(lc, task, groups, start);
  PretrainResult res;
  res.steps = out.state.step;
  res.tokens = out.state.tokens;
  res.last_loss = out.last_loss;
  res.skipped_steps = out.state.skipped;
  return res;
}

}  // namespace modernbert
