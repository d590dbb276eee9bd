// The MLM pre-training run (spec §6): its configuration, result and entry point.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modernbert/communicator.h"
#include "modernbert/optimizer.h"
#include "modernbert/schedule.h"

namespace modernbert {

// ---- The pre-training run ----
enum class LongDocuments { kTruncate, kSplit };  // a document longer than seq_len: cut | split into rows
enum class InitScheme { kMegatron };             // fresh init rule (spec §6.6, "full_megatron")
const char* to_string(LongDocuments d);          // "truncate" | "split"
const char* to_string(InitScheme s);             // "megatron"

struct PretrainConfig {
  // Model.
  std::string model_config = "tiny";  // preset name or config.json path (fresh init)
  InitScheme init = InitScheme::kMegatron;  // fresh init rule (spec §6.6)
  std::string init_from;              // continue from these weights (context extension), fresh optimizer
  std::string tile_from;              // grow from a smaller model (spec §6.7)
  double global_rope_theta = 0, local_rope_theta = 0;  // > 0: override (context extension)
  // Data.
  std::vector<std::string> data;       // JSONL (text | input_ids) or .txt (one document per line)
  std::vector<std::string> eval_data;  // held out; empty: eval_documents taken from the data's head
  int64_t eval_documents = 0;
  std::string tokenizer;               // tokenizer.json (needed for text)
  LongDocuments long_documents = LongDocuments::kTruncate;  // truncate (reference) | split
  bool lossy_utf8 = false;                  // replace invalid UTF-8 in text data with U+FFFD instead of failing
  int64_t seq_len = 1024;
  int64_t micro_batch_size = 96;        // packed rows of seq_len per forward/backward
  int64_t global_batch_size = 4608;     // rows per optimizer step (after warm-up)
  double batch_warmup_tokens = 50e9;    // 0 disables batch-size warm-up
  int64_t packing_buffer = 0;           // 0 = 5 × global_batch_size
  double mlm_probability = 0.3, eval_mlm_probability = 0.15;
  int32_t mask_token_id = -1;           // -1: from the tokenizer's [MASK], else 50284
  // Optimisation.
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double max_tokens = 1.719e12;
  int64_t max_steps = 0;                // > 0: stop after this many steps
  double grad_clip = 0;                 // > 0: clip the global grad norm
  double attention_output_dropout = 0.1;  // spec §6.9 (all phases); 0 = off
  double spike_factor = 0;              // > 0: skip a step whose loss > factor × EMA(loss)
  int64_t spike_warmup_steps = 20;
  uint64_t seed = 17;
  // Output.
  std::string output_dir;
  int64_t save_every = 1000, keep_last = 3, eval_every = 0, eval_rows = 64, log_every = 1;
  bool resume = false;
  // Not config-file fields (flags only): replace a run already in output_dir; resume although the
  // run's identity (data, seed, model, schedule, ...) differs from this invocation.
  bool overwrite = false;
  bool ignore_run_mismatch = false;
  int64_t threads = 0;       // compute threads (0 = all cores); --resume is bit-exact at the same count
  int64_t kill_at_step = 0;  // testing aid: SIGKILL itself in the middle of this step
  int64_t kill_rank = -1;    // testing aid: with kill_at_step, only this rank of an MPI job dies (-1: all)
  // Data parallelism (#16; the job's ranks are pretrain()'s Communicator). Not part of the run's
  // identity: a run may resume at another world size or ZeRO stage.
  // zero_stage 0: every rank keeps the whole optimizer state; 1: each rank keeps its shard (ZeRO-1).
  int64_t zero_stage = 0;
  int64_t sync_check_every = 100;  // compare a parameter checksum across ranks every K steps (0: at the start only)

  // Reads a training config (fields as above; option strings become enums here). Throws
  // modernbert::Error naming `source` and the field. to_json writes the strings back.
  static PretrainConfig from_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_json() const;
};

struct PretrainResult {
  int64_t steps = 0;
  double tokens = 0;
  double last_loss = 0;
  int64_t skipped_steps = 0;
};

// Runs (or resumes) a pre-training run. Data-parallel when `comm` has several ranks (`mpirun -np N
// modernbert pretrain`): every rank reads the same data and builds the same packed, masked global
// batch of each step, runs its contiguous share of the step's micro-batches (training_loop.h), and
// takes the same update (zero_stage 1: its shard of the optimizer, then an all-gather of the
// weights). Rank 0 alone writes the output directory (run.json, train_config.json, metrics.jsonl,
// checkpoints); the others only read the checkpoint rank 0 picks for --resume (a filesystem shared
// by the hosts, as the data files). Checkpoints do not depend on the world size or ZeRO stage.
// Every rank must be given the same settings (checked at the start: an Error naming the field).
PretrainResult pretrain(const PretrainConfig& cfg, Communicator& comm = single_process());

}  // namespace modernbert
