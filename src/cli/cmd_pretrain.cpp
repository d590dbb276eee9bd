// modernbert pretrain: the MLM pre-training recipe (spec §6) from a JSON config, flags overriding.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/world_flags.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/pretrain.h"
#include "modernbert/safetensors.h"

namespace modernbert::cli {
namespace {

int run_pretrain(int argc, char** argv) {
  ArgParser a("pretrain", "--config train.json [flags]   |   --data F --output-dir DIR [flags]",
              "MLM pre-training (spec §6): documents -> tokenizer -> greedy best-fit packing into rows of\n"
              "seq_len -> 30% masking (80/10/10) -> micro-batches accumulated to the global batch ->\n"
              "StableAdamW with warmup-stable-decay, batch-size warm-up, loss-spike/NaN guard, held-out\n"
              "evaluation, checkpoints (HF layout + trainer state) that --resume continues bit-identically.\n"
              "Defaults are ModernBERT-base phase 1; every number is a config field (see docs/training.md).\n"
              "Flags override the config file.\n"
              "Data-parallel: mpirun -np N modernbert pretrain ... (the same flags on every rank; each step's\n"
              "global batch and the result equal the one-process run's; rank 0 writes --output-dir).");
  a.option("config", "FILE", "training config JSON (fields of docs/training.md)");
  a.option("data", "FILES", "comma list of training files (.jsonl with text|input_ids, or .txt: one doc per line)");
  a.option("eval-data", "FILES", "comma list of held-out files");
  a.option("eval-documents", "N", "hold out the first N documents of the data when no eval data is given");
  a.option("output-dir", "DIR", "checkpoints, metrics.jsonl and train_config.json go here");
  a.option("model-config", "NAME|FILE", "preset (tiny|base|large) or config.json for a fresh model");
  a.option("tokenizer", "FILE", "tokenizer.json (needed for text data)");
  a.option("init-from", "DIR", "start from this checkpoint's weights (context extension; fresh optimizer)");
  a.option("tile-from", "DIR", "initialise by tiling this smaller model (spec §6.7)");
  a.option("global-rope-theta", "X", "override the global layers' RoPE theta (context extension: 160000)");
  a.option("local-rope-theta", "X", "override the local layers' RoPE theta");
  a.option("seq-len", "N", "row length in tokens");
  a.option("micro-batch-size", "N", "packed rows per forward/backward");
  a.option("global-batch-size", "N", "rows per optimizer step (after batch-size warm-up)");
  a.option("batch-warmup-tokens", "X", "tokens of batch-size warm-up (0 = off)");
  a.option("max-steps", "N", "stop after N steps");
  a.option("max-tokens", "X", "stop after X training tokens");
  a.option("optimizer", "NAME", "stableadamw | adamw");
  a.option("lr", "X", "peak learning rate");
  a.option("weight-decay", "X", "decoupled weight decay (not on norms/biases)");
  a.option("warmup-tokens", "X", "LR warm-up tokens");
  a.option("decay-tokens", "X", "LR decay tokens at the end of max_tokens (0 = no decay)");
  a.option("decay-shape", "S", "1-sqrt | linear");
  a.option("final-lr-fraction", "X", "alpha_f: LR fraction at the end of the decay");
  a.option("mlm-probability", "P", "masking rate");
  a.option("mask-token-id", "ID", "[MASK] id (default: the tokenizer's [MASK], else 50284)");
  a.option("grad-clip", "X", "clip the global gradient norm (0 = off)");
  a.option("attn-out-dropout", "P", "attention-output dropout probability (ModernBERT: 0.1; 0 = off)");
  a.option("spike-factor", "X", "skip steps whose loss exceeds X times the loss EMA (0 = off)");
  a.option("seed", "N", "seed (init, data order, masks)");
  a.option("save-every", "N", "checkpoint every N steps");
  a.option("keep-last", "N", "keep the last N checkpoints");
  a.option("eval-every", "N", "held-out MLM loss/accuracy every N steps (0 = off)");
  a.option("log-every", "N", "plain log line every N steps (non-TTY)");
  a.option("kill-at-step", "N", "testing aid: SIGKILL the process in the middle of step N");
  a.option("kill-rank", "R", "testing aid: with --kill-at-step, only rank R of an MPI job dies (default: every rank)");
  a.option("zero", "STAGE",
           "MPI runs: 1 = each rank keeps 1/N of the optimizer state (ZeRO stage 1), 0 = all (default)");
  a.option("sync-check-every", "K",
           "MPI runs: compare a parameter checksum across ranks every K steps (0 = at the start only; default 100)");
  a.flag("lossy-utf8", "replace invalid UTF-8 in text data with U+FFFD instead of failing");
  a.flag("resume", "continue from the latest checkpoint in --output-dir (same settings, checked)");
  a.flag("overwrite", "replace the run already in --output-dir (its checkpoints and metrics are deleted)");
  a.flag("ignore-run-mismatch", "with --resume: continue although data, seed, model or schedule differ from the run");
  a.option("threads", "N",
           "compute threads (default: all cores; MPI: cores / ranks on the host); --resume is bit-exact at the run's "
           "thread count");
  add_world_flags(a);
  if (!a.parse(argc, argv)) return 0;

  nlohmann::json j = nlohmann::json::object();
  if (a.has("config")) {
    try {
      j = nlohmann::json::parse(read_file(a.get("config")));
    } catch (const nlohmann::json::exception& e) {
      throw Error(a.get("config") + ": invalid JSON: " + e.what());
    }
  }
  auto num = [&](const char* flag, const char* key, nlohmann::json& dst) {
    if (a.has(flag)) dst[key] = a.get_double(flag);
  };
  auto integer = [&](const char* flag, const char* key) {
    if (a.has(flag)) j[key] = a.get_int(flag);
  };
  auto str = [&](const char* flag, const char* key) {
    if (a.has(flag)) j[key] = a.get(flag);
  };
  if (a.has("data")) j["data"] = split_commas(a.get("data"));
  if (a.has("eval-data")) j["eval_data"] = split_commas(a.get("eval-data"));
  integer("eval-documents", "eval_documents");
  str("output-dir", "output_dir");
  str("model-config", "model_config");
  str("tokenizer", "tokenizer");
  str("init-from", "init_from");
  str("tile-from", "tile_from");
  num("global-rope-theta", "global_rope_theta", j);
  num("local-rope-theta", "local_rope_theta", j);
  integer("seq-len", "seq_len");
  integer("micro-batch-size", "micro_batch_size");
  integer("global-batch-size", "global_batch_size");
  num("batch-warmup-tokens", "batch_warmup_tokens", j);
  integer("max-steps", "max_steps");
  num("max-tokens", "max_tokens", j);
  num("mlm-probability", "mlm_probability", j);
  integer("mask-token-id", "mask_token_id");
  num("grad-clip", "grad_clip", j);
  num("attn-out-dropout", "attention_output_dropout", j);
  num("spike-factor", "spike_factor", j);
  integer("seed", "seed");
  integer("save-every", "save_every");
  integer("keep-last", "keep_last");
  integer("eval-every", "eval_every");
  integer("log-every", "log_every");
  integer("kill-at-step", "kill_at_step");
  integer("kill-rank", "kill_rank");
  if (a.has("zero")) {
    const long long z = a.get_int("zero");
    if (z != 0 && z != 1)
      throw Error("pretrain: --zero must be 0 or 1, got " + std::to_string(z) +
                  " (1 shards the optimizer state across ranks; ZeRO stages 2 and 3 are not implemented)");
    j["zero_stage"] = z;
  }
  integer("sync-check-every", "sync_check_every");
  if (a.has("resume")) j["resume"] = true;
  if (a.has("lossy-utf8")) j["lossy_utf8"] = true;
  if (a.has("optimizer")) j["optimizer"]["type"] = a.get("optimizer");
  if (a.has("lr")) j["optimizer"]["lr"] = a.get_double("lr");
  if (a.has("weight-decay")) j["optimizer"]["weight_decay"] = a.get_double("weight-decay");
  if (a.has("warmup-tokens")) j["schedule"]["warmup_tokens"] = a.get_double("warmup-tokens");
  if (a.has("decay-tokens")) j["schedule"]["decay_tokens"] = a.get_double("decay-tokens");
  if (a.has("decay-shape")) j["schedule"]["decay_shape"] = a.get("decay-shape");
  if (a.has("final-lr-fraction")) j["schedule"]["alpha_f"] = a.get_double("final-lr-fraction");

  PretrainConfig cfg = PretrainConfig::from_json(j, a.has("config") ? a.get("config") : "flags");
  cfg.overwrite = a.has("overwrite");
  cfg.ignore_run_mismatch = a.has("ignore-run-mismatch");
  if (cfg.ignore_run_mismatch && !cfg.resume) throw Error("pretrain: --ignore-run-mismatch needs --resume");
  if (a.has("threads")) {
    const long long n = a.get_int("threads");
    if (n < 1 || n > 4096) throw Error("pretrain: --threads must be in [1, 4096]");
    cfg.threads = n;  // pretrain() sizes the kernels' pool from it
  }
  Communicator& world = open_command_world(a);
  const PretrainResult r = pretrain(cfg, world);
  if (world.is_root())
    std::fprintf(stderr, "pretrain: done: %lld steps, %.0f tokens, last loss %.4f, %lld skipped -> %s\n",
                 static_cast<long long>(r.steps), r.tokens, r.last_loss, static_cast<long long>(r.skipped_steps),
                 cfg.output_dir.c_str());
  return 0;
}

CommandRegistrar reg({"pretrain", "MLM pre-training (packing, masking, StableAdamW, checkpoints, resume)", run_pretrain});

}  // namespace
}  // namespace modernbert::cli
