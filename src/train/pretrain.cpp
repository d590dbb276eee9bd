// The MLM pre-training loop (spec §6): documents → tokens → greedy best-fit packing → 30% masking
// → micro-batches with gradient accumulation → StableAdamW under warmup-stable-decay, with
// batch-size warm-up, optional clipping, a loss-spike/NaN guard, held-out evaluation, JSONL
// metrics, and atomic checkpoints (HF model dir + trainer state) that resume bit-identically.
//
// Bit-exact resume: everything a step depends on is either saved (parameters F32, moments,
// optimizer step, tokens seen, document cursor + epoch, the packer's buffer, the masking row
// serial, the spike guard's EMA as exact hex floats) or a pure function of the config (document
// order per epoch, masks per row serial). Reductions have fixed orders (backward_kernels.h).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/model_dir.h"
#include "modernbert/token_ids.h"
#include "modernbert/tokenizer.h"
#include "modernbert/trainer.h"
#include "tokenizer/unicode.h"
#include "train/pretrain_state.h"

namespace fs = std::filesystem;

namespace modernbert {

// ---- config ---------------------------------------------------------------------------------------

namespace {

template <class T>
void get_to(const nlohmann::json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const std::exception& e) {
    throw Error(source + ": field " + key + ": " + e.what());
  }
}

std::vector<std::string> str_list(const nlohmann::json& j, const char* key, const std::string& source) {
  std::vector<std::string> v;
  if (!j.contains(key)) return v;
  if (j[key].is_string()) return {j[key].get<std::string>()};
  if (!j[key].is_array()) throw Error(source + ": field " + key + " must be a string or a list of strings");
  for (const auto& x : j[key]) {
    if (!x.is_string()) throw Error(source + ": field " + key + " must hold strings");
    v.push_back(x.get<std::string>());
  }
  return v;
}

}  // namespace

PretrainConfig PretrainConfig::from_json(const nlohmann::json& j, const std::string& src) {
  static const std::vector<std::string> known = {"model_config",
                                                 "init",
                                                 "init_from",
                                                 "tile_from",
                                                 "global_rope_theta",
                                                 "local_rope_theta",
                                                 "data",
                                                 "eval_data",
                                                 "eval_documents",
                                                 "tokenizer",
                                                 "long_documents",
                                                 "seq_len",
                                                 "micro_batch_size",
                                                 "global_batch_size",
                                                 "batch_warmup_tokens",
                                                 "packing_buffer",
                                                 "mlm_probability",
                                                 "eval_mlm_probability",
                                                 "mask_token_id",
                                                 "optimizer",
                                                 "schedule",
                                                 "max_tokens",
                                                 "max_steps",
                                                 "grad_clip",
                                                 "attention_output_dropout",
                                                 "spike_factor",
                                                 "spike_warmup_steps",
                                                 "seed",
                                                 "output_dir",
                                                 "save_every",
                                                 "keep_last",
                                                 "eval_every",
                                                 "eval_rows",
                                                 "log_every",
                                                 "resume",
                                                 "kill_at_step",
                                                 "lossy_utf8"};
  if (!j.is_object()) throw Error(src + ": the training config must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw Error(src + ": unknown field '" + it.key() + "'");
  PretrainConfig c;
  get_to(j, "model_config", c.model_config, src);
  get_to(j, "init", c.init, src);
  get_to(j, "init_from", c.init_from, src);
  get_to(j, "tile_from", c.tile_from, src);
  get_to(j, "global_rope_theta", c.global_rope_theta, src);
  get_to(j, "local_rope_theta", c.local_rope_theta, src);
  c.data = str_list(j, "data", src);
  c.eval_data = str_list(j, "eval_data", src);
  get_to(j, "eval_documents", c.eval_documents, src);
  get_to(j, "tokenizer", c.tokenizer, src);
  get_to(j, "long_documents", c.long_documents, src);
  get_to(j, "seq_len", c.seq_len, src);
  get_to(j, "micro_batch_size", c.micro_batch_size, src);
  get_to(j, "global_batch_size", c.global_batch_size, src);
  get_to(j, "batch_warmup_tokens", c.batch_warmup_tokens, src);
  get_to(j, "packing_buffer", c.packing_buffer, src);
  get_to(j, "mlm_probability", c.mlm_probability, src);
  get_to(j, "eval_mlm_probability", c.eval_mlm_probability, src);
  get_to(j, "mask_token_id", c.mask_token_id, src);
  if (j.contains("optimizer")) {
    const auto& o = j["optimizer"];
    const std::string s = src + ": optimizer";
    for (auto it = o.begin(); it != o.end(); ++it)
      if (!std::set<std::string>{"type", "lr", "beta1", "beta2", "eps", "weight_decay"}.count(it.key()))
        throw Error(s + ": unknown field '" + it.key() + "'");
    get_to(o, "type", c.optimizer.type, s);
    get_to(o, "lr", c.optimizer.lr, s);
    get_to(o, "beta1", c.optimizer.beta1, s);
    get_to(o, "beta2", c.optimizer.beta2, s);
    get_to(o, "eps", c.optimizer.eps, s);
    get_to(o, "weight_decay", c.optimizer.weight_decay, s);
  }
  if (j.contains("schedule")) {
    const auto& o = j["schedule"];
    const std::string s = src + ": schedule";
    for (auto it = o.begin(); it != o.end(); ++it)
      if (!std::set<std::string>{"warmup_tokens", "decay_tokens", "total_tokens", "decay_shape", "alpha_i",
                                 "alpha_f"}
               .count(it.key()))
        throw Error(s + ": unknown field '" + it.key() + "'");
    get_to(o, "warmup_tokens", c.schedule.warmup_tokens, s);
    get_to(o, "decay_tokens", c.schedule.decay_tokens, s);
    get_to(o, "total_tokens", c.schedule.total_tokens, s);
    get_to(o, "decay_shape", c.schedule.decay_shape, s);
    get_to(o, "alpha_i", c.schedule.alpha_i, s);
    get_to(o, "alpha_f", c.schedule.alpha_f, s);
  }
  get_to(j, "max_tokens", c.max_tokens, src);
  get_to(j, "max_steps", c.max_steps, src);
  get_to(j, "grad_clip", c.grad_clip, src);
  get_to(j, "attention_output_dropout", c.attention_output_dropout, src);
  get_to(j, "spike_factor", c.spike_factor, src);
  get_to(j, "spike_warmup_steps", c.spike_warmup_steps, src);
  get_to(j, "seed", c.seed, src);
  get_to(j, "output_dir", c.output_dir, src);
  get_to(j, "save_every", c.save_every, src);
  get_to(j, "keep_last", c.keep_last, src);
  get_to(j, "eval_every", c.eval_every, src);
  get_to(j, "eval_rows", c.eval_rows, src);
  get_to(j, "log_every", c.log_every, src);
  get_to(j, "resume", c.resume, src);
  get_to(j, "kill_at_step", c.kill_at_step, src);
  get_to(j, "lossy_utf8", c.lossy_utf8, src);
  auto positive = [&](int64_t v, const char* f) {
    if (v <= 0) throw Error(src + ": field " + std::string(f) + " must be positive");
  };
  positive(c.seq_len, "seq_len");
  positive(c.micro_batch_size, "micro_batch_size");
  positive(c.global_batch_size, "global_batch_size");
  if (c.global_batch_size % c.micro_batch_size != 0)
    throw Error(src + ": field global_batch_size (" + std::to_string(c.global_batch_size) +
                ") must be a multiple of micro_batch_size (" + std::to_string(c.micro_batch_size) + ")");
  if (!(c.mlm_probability > 0 && c.mlm_probability < 1)) throw Error(src + ": field mlm_probability must be in (0, 1)");
  if (!(c.attention_output_dropout >= 0 && c.attention_output_dropout < 1))
    throw Error(src + ": field attention_output_dropout must be in [0, 1)");
  if (c.long_documents != "truncate" && c.long_documents != "split")
    throw Error(src + ": field long_documents must be truncate or split");
  if (!c.tile_from.empty() && !c.init_from.empty()) throw Error(src + ": give at most one of tile_from / init_from");
  return c;
}

nlohmann::json PretrainConfig::to_json() const {
  nlohmann::json j;
  j["model_config"] = model_config;
  j["init"] = init;
  j["init_from"] = init_from;
  j["tile_from"] = tile_from;
  j["global_rope_theta"] = global_rope_theta;
  j["local_rope_theta"] = local_rope_theta;
  j["data"] = data;
  j["eval_data"] = eval_data;
  j["eval_documents"] = eval_documents;
  j["tokenizer"] = tokenizer;
  j["long_documents"] = long_documents;
  j["seq_len"] = seq_len;
  j["micro_batch_size"] = micro_batch_size;
  j["global_batch_size"] = global_batch_size;
  j["batch_warmup_tokens"] = batch_warmup_tokens;
  j["packing_buffer"] = packing_buffer;
  j["mlm_probability"] = mlm_probability;
  j["eval_mlm_probability"] = eval_mlm_probability;
  j["mask_token_id"] = mask_token_id;
  j["optimizer"] = {{"type", optimizer.type}, {"lr", optimizer.lr}, {"beta1", optimizer.beta1},
                    {"beta2", optimizer.beta2}, {"eps", optimizer.eps}, {"weight_decay", optimizer.weight_decay}};
  j["schedule"] = {{"warmup_tokens", schedule.warmup_tokens}, {"decay_tokens", schedule.decay_tokens},
                   {"total_tokens", schedule.total_tokens}, {"decay_shape", schedule.decay_shape},
                   {"alpha_i", schedule.alpha_i}, {"alpha_f", schedule.alpha_f}};
  j["max_tokens"] = max_tokens;
  j["max_steps"] = max_steps;
  j["grad_clip"] = grad_clip;
  j["attention_output_dropout"] = attention_output_dropout;
  j["spike_factor"] = spike_factor;
  j["spike_warmup_steps"] = spike_warmup_steps;
  j["seed"] = seed;
  j["output_dir"] = output_dir;
  j["save_every"] = save_every;
  j["keep_last"] = keep_last;
  j["eval_every"] = eval_every;
  j["eval_rows"] = eval_rows;
  j["log_every"] = log_every;
  j["lossy_utf8"] = lossy_utf8;
  return j;
}

// ---- data -----------------------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Reads documents: JSONL lines with `input_ids` (used as given) or `text` (tokenized with
// [CLS] … [SEP]), or plain text with one document per non-empty line. Errors name FILE:LINE.
std::vector<std::vector<int32_t>> load_documents(const std::vector<std::string>& files, const Tokenizer* tok,
                                                 int64_t seq_len, bool split, bool lossy_utf8) {
  std::vector<std::vector<int32_t>> docs;
  std::vector<std::string> texts, text_where;
  auto add_ids = [&](std::vector<int32_t> ids) {
    if (ids.empty()) return;
    if (!split) {
      if (static_cast<int64_t>(ids.size()) > seq_len) ids.resize(static_cast<size_t>(seq_len));
      docs.push_back(std::move(ids));
      return;
    }
    for (size_t s = 0; s < ids.size(); s += static_cast<size_t>(seq_len))
      docs.emplace_back(ids.begin() + static_cast<long>(s),
                        ids.begin() + static_cast<long>(std::min(ids.size(), s + static_cast<size_t>(seq_len))));
  };
  auto flush_texts = [&] {
    if (texts.empty()) return;
    if (!tok) throw Error(text_where.front() + ": text documents need a tokenizer (field tokenizer)");
    EncodeOptions eo;
    eo.lossy_utf8 = lossy_utf8;
    std::vector<Encoding> enc;
    try {
      enc = tok->encode_batch(texts, eo);
    } catch (const BatchItemError& e) {
      if (e.index() >= text_where.size()) throw;
      std::string msg = e.detail();
      if (const size_t h = msg.find("use lossy mode"); h != std::string::npos) msg.replace(h, 14, "use --lossy-utf8");
      throw Error(text_where[e.index()] + ": " + msg);
    }
    for (auto& e : enc) add_ids(std::move(e.ids));
    texts.clear();
    text_where.clear();
  };
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) throw Error("data: cannot open " + f);
    const bool jsonl = ends_with(f, ".jsonl") || ends_with(f, ".json");
    std::string line;
    int64_t ln = 0;
    while (std::getline(in, line)) {
      ++ln;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = f + ":" + std::to_string(ln);
      if (!jsonl) {
        texts.push_back(line);
        text_where.push_back(where);
        continue;
      }
      // A JSON parser cannot carry invalid UTF-8: with --lossy-utf8 the line is repaired first.
      if (lossy_utf8) line = modernbert::tok::utf8_lossy(line, nullptr);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw Error(where + ": invalid JSON: " + e.what());
      }
      if (!j.is_object()) throw Error(where + ": needs a JSON object with input_ids or text");
      if (j.contains("input_ids")) {
        flush_texts();  // keep document order
        // Range against the vocabulary is checked once the model is known; here: integers, no wrap.
        add_ids(parse_token_ids(j["input_ids"], 0, where + ": field input_ids", /*allow_empty=*/true));
      } else if (j.contains("text") && j["text"].is_string()) {
        texts.push_back(j["text"].get<std::string>());
        text_where.push_back(where);
      } else {
        throw Error(where + ": needs field input_ids (list of ints) or text (string)");
      }
    }
    flush_texts();
  }
  return docs;
}

TrainBatch make_micro_batch(const std::vector<PackedRow>& rows, const std::vector<std::vector<int32_t>>& labels,
                            size_t r0, size_t r1) {
  TrainBatch tb;
  tb.batch.ids.clear();
  for (size_t r = r0; r < r1; ++r) {
    const auto& row = rows[r];
    const int64_t base = tb.batch.num_tokens();
    tb.batch.ids.insert(tb.batch.ids.end(), row.ids.begin(), row.ids.end());
    for (size_t s = 1; s < row.cu_seqlens.size(); ++s) tb.batch.cu_seqlens.push_back(base + row.cu_seqlens[s]);
    tb.token_labels.insert(tb.token_labels.end(), labels[r].begin(), labels[r].end());
  }
  return tb;
}

std::string ckpt_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "checkpoint-%08" PRId64, step);
  return buf;
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) != 0 || !e.is_directory()) continue;
    if (!fs::exists(e.path() / "trainer_state.safetensors")) continue;
    const std::string digits = n.substr(11);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The files of a run in `dir` (names relative to it): run.json, train_config.json, metrics.jsonl
// and checkpoint directories. Empty when the directory holds no run (or does not exist).
std::vector<std::string> run_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  if (!fs::is_directory(dir)) throw Error("pretrain: output_dir " + dir + " is not a directory");
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n == "run.json" || n == "train_config.json" || n == "metrics.jsonl" || n.rfind("checkpoint-", 0) == 0)
      out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

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

}  // namespace

// ---- loop -----------------------------------------------------------------------------------------

PretrainResult pretrain(const PretrainConfig& pc) {
  if (pc.output_dir.empty()) throw Error("pretrain: output_dir is required");
  if (pc.data.empty()) throw Error("pretrain: data is required");
  if (pc.resume && pc.overwrite) throw Error("pretrain: give at most one of --resume / --overwrite");
  // Never destroy a run by accident: a directory that holds one needs --resume or --overwrite.
  const std::vector<std::string> existing = run_files(pc.output_dir);
  if (!existing.empty() && !pc.resume) {
    std::string names;
    for (const auto& n : existing) names += (names.empty() ? "" : ", ") + n;
    if (!pc.overwrite)
      throw Error("pretrain: " + pc.output_dir + " already holds a run (" + names +
                  "); pass --resume to continue it or --overwrite to replace it");
    for (const auto& n : existing) fs::remove_all(fs::path(pc.output_dir) / n);
    std::fprintf(stderr, "pretrain: --overwrite: removed %s from %s\n", names.c_str(), pc.output_dir.c_str());
  }
  fs::create_directories(pc.output_dir);
  // A checkpoint interrupted mid-write leaves only a .tmp-* directory (never a half checkpoint).
  for (const auto& e : fs::directory_iterator(pc.output_dir))
    if (e.path().filename().string().rfind(".tmp-checkpoint-", 0) == 0) fs::remove_all(e.path());
  const bool tty = isatty(fileno(stderr));

  std::optional<Tokenizer> tok;
  if (!pc.tokenizer.empty()) tok = Tokenizer::from_file(pc.tokenizer);
  const bool split = pc.long_documents == "split";
  auto docs = load_documents(pc.data, tok ? &*tok : nullptr, pc.seq_len, split, pc.lossy_utf8);
  std::vector<std::vector<int32_t>> eval_docs;
  if (!pc.eval_data.empty()) {
    eval_docs = load_documents(pc.eval_data, tok ? &*tok : nullptr, pc.seq_len, split, pc.lossy_utf8);
  } else if (pc.eval_documents > 0) {
    const size_t n = std::min(docs.size() / 2, static_cast<size_t>(pc.eval_documents));
    eval_docs.assign(docs.begin(), docs.begin() + static_cast<long>(n));
    docs.erase(docs.begin(), docs.begin() + static_cast<long>(n));
  }
  if (docs.empty()) throw Error("pretrain: the data has no documents");

  // ---- model ----
  const auto ckpts = pc.resume ? list_checkpoints(pc.output_dir) : std::vector<std::pair<int64_t, std::string>>{};
  std::unique_ptr<Weights> w;
  ModelConfig mcfg;
  auto load_into = [&](const std::string& dir, ModelConfig c) {
    LoadOptions lo;
    lo.zero_copy = false;
    LoadedModel lm = load_model_dir(dir, lo);
    lm.weights.make_contiguous();
    if (!lm.weights.heads().mlm) throw Error("pretrain: " + dir + " has no MLM head");
    auto nw = std::make_unique<Weights>(c, lm.weights.heads());
    if (nw->num_params() != lm.weights.num_params()) throw Error("pretrain: parameter layout of " + dir + " differs");
    std::memcpy(nw->data(), lm.weights.data(), nw->num_params() * sizeof(float));
    return nw;
  };
  if (!ckpts.empty()) {
    mcfg = ModelConfig::from_file(ckpts.back().second + "/config.json");
    w = load_into(ckpts.back().second, mcfg);
  } else if (!pc.init_from.empty()) {
    mcfg = invocation_model_config(pc);
    w = load_into(pc.init_from, mcfg);
  } else {
    mcfg = invocation_model_config(pc);
    w = std::make_unique<Weights>(mcfg, HeadSet::parse("mlm"));
    init_weights(*w, pc.seed);
    if (!pc.tile_from.empty()) {
      LoadOptions lo;
      lo.zero_copy = false;
      LoadedModel src = load_model_dir(pc.tile_from, lo);
      src.weights.make_contiguous();
      tile_weights(src.weights, *w);
    }
  }
  if (pc.seq_len > mcfg.max_position_embeddings)
    std::fprintf(stderr, "pretrain: note: seq_len %lld exceeds max_position_embeddings %lld\n",
                 static_cast<long long>(pc.seq_len), static_cast<long long>(mcfg.max_position_embeddings));
  for (const auto& d : docs)
    for (int32_t id : d)
      if (id < 0 || id >= mcfg.vocab_size)
        throw Error("pretrain: token id " + std::to_string(id) + " outside the vocabulary [0, " +
                    std::to_string(mcfg.vocab_size) + ")");

  MaskingConfig mask;
  mask.probability = pc.mlm_probability;
  mask.mask_token_id = pc.mask_token_id >= 0 ? pc.mask_token_id : 50284;
  if (pc.mask_token_id < 0 && tok) {
    if (auto id = tok->token_to_id("[MASK]")) mask.mask_token_id = *id;
  }
  if (mask.mask_token_id >= mcfg.vocab_size)
    throw Error("pretrain: mask_token_id " + std::to_string(mask.mask_token_id) + " is outside the vocabulary");

  Optimizer opt(w->specs(), pc.optimizer);
  TrainModel model(*w);
  DocumentStream stream(docs, pc.seed, true);
  const int64_t buffer = pc.packing_buffer > 0 ? pc.packing_buffer : 5 * pc.global_batch_size;
  SequencePacker packer(pc.seq_len, buffer, [&] { return stream.next(); });
  BatchWarmup warm;
  warm.max_batches = pc.global_batch_size / pc.micro_batch_size;
  warm.warmup_tokens = pc.batch_warmup_tokens;
  ScheduleConfig sched = pc.schedule;
  if (sched.total_tokens <= 0) sched.total_tokens = pc.max_tokens;

  // The run's identity; a resume must match the run it continues (or be told to ignore it).
  const nlohmann::json identity =
      train::run_identity(pc, invocation_model_config(pc), mask.mask_token_id, buffer, sched.total_tokens);
  const int64_t threads = kernels::default_pool().size();
  const std::string gemm = kernels::gemm_backend_name();
  const std::string run_json = pc.output_dir + "/run.json";
  train::TrainerCounters st;
  std::string run_id;
  auto check_identity = [&](const nlohmann::json& saved, const std::string& where) {
    if (saved.is_null()) {
      std::fprintf(stderr, "pretrain: note: %s stores no run identity (older format); not compared\n", where.c_str());
      return;
    }
    const auto diffs = train::identity_differences(saved, identity);
    if (diffs.empty()) return;
    std::string msg;
    for (const auto& d : diffs) msg += "\n  " + d;
    if (!pc.ignore_run_mismatch)
      throw Error("pretrain: --resume: this invocation differs from the run in " + pc.output_dir + " (" + where +
                  "):" + msg + "\nresume with the same settings, or pass --ignore-run-mismatch to continue anyway");
    std::fprintf(stderr, "pretrain: warning: --ignore-run-mismatch: resuming although%s\n", msg.c_str());
  };
  const std::string metrics_path = pc.output_dir + "/metrics.jsonl";
  nlohmann::json resume_record;
  if (!ckpts.empty()) {
    const std::string state_path = ckpts.back().second + "/trainer_state.safetensors";
    train::TrainerStateLimits lim;
    lim.num_params = static_cast<int64_t>(w->num_params());
    lim.num_documents = static_cast<int64_t>(stream.size());
    lim.vocab_size = mcfg.vocab_size;
    lim.seq_len = pc.seq_len;
    train::TrainerState ts =
        train::read_trainer_state(state_path, lim, opt.m().data(), opt.v().data(),
                                  [&](const nlohmann::json& saved) { check_identity(saved, ckpts.back().second); });
    st = ts.counters;
    run_id = ts.run_id.empty() ? train::run_id_of(identity) : ts.run_id;
    if (ts.threads > 0 && ts.threads != threads)
      std::fprintf(
          stderr,
          "pretrain: note: the run used %lld threads, this process %lld: the continuation is not bit-identical "
          "to an uninterrupted run (pass --threads %lld for that)\n",
          static_cast<long long>(ts.threads), static_cast<long long>(threads), static_cast<long long>(ts.threads));
    if (!ts.gemm.empty() && ts.gemm != gemm)
      std::fprintf(stderr, "pretrain: note: the run used the %s GEMM backend, this process %s: not bit-identical\n",
                   ts.gemm.c_str(), gemm.c_str());
    opt.set_step_count(st.optimizer_step);
    stream.seek(st.epoch, st.cursor);
    packer.set_buffer(std::move(ts.packer_buffer));
    resume_record = {{"event", "resume"}, {"step", st.step}, {"checkpoint", fs::path(ckpts.back().second).filename()}};
    std::fprintf(stderr, "pretrain: resumed from %s (step %lld, %.0f tokens)\n", ckpts.back().second.c_str(),
                 static_cast<long long>(st.step), st.tokens);
  } else if (pc.resume && fs::exists(run_json)) {
    // Killed before its first checkpoint: start over as the same run.
    nlohmann::json saved;
    try {
      saved = nlohmann::json::parse(read_file(run_json));
    } catch (const nlohmann::json::exception& e) {
      throw Error(run_json + ": invalid JSON: " + e.what());
    }
    check_identity(saved.value("identity", nlohmann::json()), run_json);
    run_id = saved.value("run_id", train::run_id_of(identity));
    resume_record = {{"event", "resume"}, {"step", 0}, {"checkpoint", nullptr}};
    std::fprintf(stderr, "pretrain: --resume: no checkpoint in %s yet; starting the run from step 0\n",
                 pc.output_dir.c_str());
  } else {
    run_id = train::run_id_of(identity);
  }
  write_file_atomic(run_json, nlohmann::json{{"run_id", run_id}, {"identity", identity}}.dump(2) + "\n");
  write_file_atomic(pc.output_dir + "/train_config.json", pc.to_json().dump(2) + "\n");
  // Metrics are only ever appended: a resumed run first records where it resumed, then re-logs the
  // steps after that checkpoint (readers keep the last record of each step).
  std::ofstream metrics(metrics_path, std::ios::app);
  if (!metrics) throw Error("pretrain: cannot open " + metrics_path + " for appending");
  if (!resume_record.is_null()) metrics << resume_record.dump() << "\n" << std::flush;

  // Held-out rows: packed once (documents in order), masked at eval_mlm_probability.
  std::vector<PackedRow> eval_rows;
  std::vector<std::vector<int32_t>> eval_labels;
  if (!eval_docs.empty() && pc.eval_every > 0) {
    size_t next_doc = 0;
    SequencePacker ep(pc.seq_len, static_cast<int64_t>(eval_docs.size()) + 1, [&] {
      return next_doc < eval_docs.size() ? eval_docs[next_doc++] : std::vector<int32_t>{};
    });
    std::vector<PackedRow> one;
    while (static_cast<int64_t>(eval_rows.size()) < pc.eval_rows && ep.next(1, one)) eval_rows.push_back(one[0]);
    MaskingConfig em = mask;
    em.probability = pc.eval_mlm_probability;
    for (size_t r = 0; r < eval_rows.size(); ++r) {
      eval_labels.emplace_back();
      mlm_mask(eval_rows[r].ids, eval_labels.back(), em, pc.seed ^ 0xE7A1ull, r);
    }
  }
  auto evaluate = [&](double* loss, double* acc) {
    double sum = 0;
    int64_t count = 0, correct = 0;
    model.set_attention_output_dropout(0.0, 0);  // evaluation: no dropout
    for (size_t r0 = 0; r0 < eval_rows.size(); r0 += static_cast<size_t>(pc.micro_batch_size)) {
      const size_t r1 = std::min(eval_rows.size(), r0 + static_cast<size_t>(pc.micro_batch_size));
      TrainBatch tb = make_micro_batch(eval_rows, eval_labels, r0, r1);
      if (TrainModel::count_items(tb, TaskType::kMlm, 0) == 0) continue;
      const LossResult lr = model.forward_loss(tb, TaskType::kMlm);
      sum += lr.loss_sum;
      count += lr.count;
      correct += lr.correct;
    }
    *loss = count ? sum / static_cast<double>(count) : std::nan("");
    *acc = count ? static_cast<double>(correct) / static_cast<double>(count) : std::nan("");
  };

  auto save = [&]() {
    const std::string name = ckpt_name(st.step);
    const std::string final_dir = pc.output_dir + "/" + name;
    const std::string tmp = pc.output_dir + "/.tmp-" + name;
    if (fs::exists(final_dir) && train::checkpoint_run_id(final_dir) != run_id)
      throw Error("pretrain: " + final_dir + " belongs to another run; refusing to replace it");
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    save_model_dir(tmp, mcfg, *w);
    train::test_kill_point("before_state_write", st.step);
    train::TrainerState ts;
    ts.counters = st;
    ts.counters.optimizer_step = opt.step_count();
    ts.counters.epoch = stream.epoch();
    ts.counters.cursor = stream.cursor();
    ts.packer_buffer = packer.buffer();
    ts.run_id = run_id;
    ts.identity = identity;
    ts.threads = threads;
    ts.gemm = gemm;
    train::write_trainer_state(tmp + "/trainer_state.safetensors", ts, opt.m().data(), opt.v().data(),
                               static_cast<int64_t>(w->num_params()));
    train::test_kill_point("before_rename", st.step);
    fs::remove_all(final_dir);   // only ever a checkpoint of this run (checked above)
    fs::rename(tmp, final_dir);  // the checkpoint appears complete or not at all
    train::test_kill_point("after_rename", st.step);
    // --keep-last: prune only this run's checkpoints, oldest first.
    std::vector<std::string> ours;
    for (const auto& [step, dir] : list_checkpoints(pc.output_dir))
      if (train::checkpoint_run_id(dir) == run_id) ours.push_back(dir);
    for (size_t k = 0; pc.keep_last > 0 && ours.size() - k > static_cast<size_t>(pc.keep_last); ++k)
      fs::remove_all(ours[k]);
  };

  std::vector<float> grads(w->num_params());
  std::vector<PackedRow> rows;
  std::vector<std::vector<int32_t>> labels;
  PretrainResult res;
  const auto t_start = std::chrono::steady_clock::now();
  const double tokens_at_start = st.tokens;
  int64_t last_saved = st.step;
  auto done = [&] {
    return (pc.max_steps > 0 && st.step >= pc.max_steps) || (pc.max_tokens > 0 && st.tokens >= pc.max_tokens);
  };
  while (!done()) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n_micro = warm.batches_at(st.tokens);
    if (!packer.next(n_micro * pc.micro_batch_size, rows))
      throw Error("pretrain: not enough data to fill " + std::to_string(n_micro * pc.micro_batch_size) +
                  " rows (add documents or lower the batch size)");
    labels.assign(rows.size(), {});
    int64_t total = 0, step_tokens = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      mlm_mask(rows[r].ids, labels[r], mask, pc.seed, st.row_serial++);
      for (int32_t y : labels[r]) total += y != -100;
      step_tokens += static_cast<int64_t>(rows[r].ids.size());
    }
    std::fill(grads.begin(), grads.end(), 0.0f);
    double loss = 0;
    int64_t correct = 0;
    for (size_t r0 = 0; r0 < rows.size(); r0 += static_cast<size_t>(pc.micro_batch_size)) {
      TrainBatch tb = make_micro_batch(rows, labels, r0, std::min(rows.size(), r0 + static_cast<size_t>(pc.micro_batch_size)));
      if (total == 0) break;
      // Dropout masks keyed by (seed, step, first row): a resumed run draws the same ones.
      model.set_attention_output_dropout(pc.attention_output_dropout,
                                         pc.seed * 0x2545F4914F6CDD1Dull ^ (static_cast<uint64_t>(st.step) << 20) ^ r0);
      const LossResult lr = model.forward_backward(tb, TaskType::kMlm, grads.data(), static_cast<double>(total));
      loss += lr.loss;
      correct += lr.correct;
    }
    if (total == 0) loss = std::nan("");
    double gnorm = std::sqrt(grad_norm_sq(grads.data(), grads.size()));
    const double lr_t = pc.optimizer.lr * lr_multiplier(sched, st.tokens);
    std::string skip_reason;
    if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
      skip_reason = "non-finite loss or gradient";
    } else if (pc.spike_factor > 0 && st.ema_n >= pc.spike_warmup_steps && loss > pc.spike_factor * st.ema) {
      skip_reason = "loss spike";
    }
    if (pc.kill_at_step > 0 && st.step + 1 == pc.kill_at_step) std::raise(SIGKILL);  // test aid: die mid-step
    train::test_kill_point("step", st.step + 1);
    if (skip_reason.empty()) {
      if (pc.grad_clip > 0 && gnorm > pc.grad_clip) {
        const float s = static_cast<float>(pc.grad_clip / gnorm);
        for (auto& g : grads) g *= s;
      }
      opt.step(w->data(), grads.data(), lr_t);
      st.ema = st.ema_n == 0 ? loss : 0.9 * st.ema + 0.1 * loss;
      ++st.ema_n;
    } else {
      ++st.skipped;
      std::fprintf(stderr, "%spretrain: step %lld skipped (%s: loss %g, grad norm %g)\n", tty ? "\n" : "",
                   static_cast<long long>(st.step + 1), skip_reason.c_str(), loss, gnorm);
    }
    st.tokens += static_cast<double>(step_tokens);
    ++st.step;
    res.last_loss = loss;

    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const double tps = (st.tokens - tokens_at_start) / std::max(elapsed, 1e-9);
    nlohmann::json mj = {{"step", st.step},
                         {"tokens", st.tokens},
                         {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(nullptr)},
                         {"accuracy", total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0},
                         {"lr", lr_t},
                         {"grad_norm", std::isfinite(gnorm) ? nlohmann::json(gnorm) : nlohmann::json(nullptr)},
                         {"rows", rows.size()},
                         {"masked", total},
                         {"tokens_per_s", step_tokens / std::max(dt, 1e-9)}};
    if (!skip_reason.empty()) mj["skipped"] = skip_reason;
    if (pc.eval_every > 0 && !eval_rows.empty() && st.step % pc.eval_every == 0) {
      double el, ea;
      evaluate(&el, &ea);
      mj["eval_loss"] = el;
      mj["eval_accuracy"] = ea;
      std::fprintf(stderr, "%spretrain: step %lld eval loss %.4f accuracy %.4f\n", tty ? "\n" : "",
                   static_cast<long long>(st.step), el, ea);
    }
    metrics << mj.dump() << "\n";
    metrics.flush();

    // Progress: a bar on a TTY, plain lines otherwise.
    double frac = 0;
    if (pc.max_steps > 0) frac = static_cast<double>(st.step) / static_cast<double>(pc.max_steps);
    if (pc.max_tokens > 0) frac = std::max(frac, st.tokens / pc.max_tokens);
    frac = std::min(1.0, frac);
    const double eta = frac > 0 ? elapsed * (1.0 - frac) / std::max(frac - 0.0, 1e-12) * 1.0 : 0;
    if (tty) {
      const int width = 28, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%.*s%.*s] %5.1f%% step %lld | %.3gk tok/s | loss %.4f | lr %.2e | ETA %02d:%02d:%02d ",
                   filled, "############################", width - filled, "............................",
                   100 * frac, static_cast<long long>(st.step), tps / 1000, loss, lr_t, static_cast<int>(eta / 3600),
                   static_cast<int>(eta / 60) % 60, static_cast<int>(eta) % 60);
    } else if (pc.log_every > 0 && st.step % pc.log_every == 0) {
      std::fprintf(stderr, "pretrain: step %lld tokens %.0f loss %.4f lr %.3e grad_norm %.3g tok/s %.0f eta %.0fs\n",
                   static_cast<long long>(st.step), st.tokens, loss, lr_t, gnorm, tps, eta);
    }
    if (pc.save_every > 0 && st.step % pc.save_every == 0) {
      save();
      last_saved = st.step;
    }
  }
  if (last_saved != st.step || list_checkpoints(pc.output_dir).empty()) save();
  if (tty) std::fprintf(stderr, "\n");
  res.steps = st.step;
  res.tokens = st.tokens;
  res.skipped_steps = st.skipped;
  return res;
}

}  // namespace modernbert
