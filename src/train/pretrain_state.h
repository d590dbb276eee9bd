// The pretraining run on disk: its identity (what must not change across --resume), the trainer
// state of a checkpoint (counters, optimizer moments, packer buffer) read back with every field
// validated before use, and the guards that keep one run from destroying another.
//
// Layout of an output directory:
//   run.json                      identity + run_id of the run that owns the directory
//   train_config.json             the last invocation's full config (informational)
//   metrics.jsonl                 one record per step, appended (a resume adds {"event":"resume"})
//   checkpoint-NNNNNNNN/          HF model dir + trainer_state.safetensors (metadata: state, run)
//   .tmp-checkpoint-NNNNNNNN/     a checkpoint being written (renamed into place when complete)
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace modernbert {

struct PretrainConfig;
struct ModelConfig;

namespace train {

// What a resumed run must share with the run it continues: the effective model config, content
// hashes of the tokenizer and of every data file (with sizes), seed, batch layout, masking,
// optimizer and LR schedule (after defaults are applied). Output, logging and stopping fields
// (output_dir, save_every, keep_last, eval_every, log_every, max_steps, threads) may change, and so
// may the data-parallel world size and ZeRO stage (the global batch of a step does not depend on them).
// `mask_token_id` and `packing_buffer` are the effective values.
nlohmann::json run_identity(const PretrainConfig& pc, const ModelConfig& effective_model, int32_t mask_token_id,
                            int64_t packing_buffer, double schedule_total_tokens);

// Every difference between two identities, one readable line each ("seed: 5 (saved) vs 6 (now)").
// Empty when they agree.
std::vector<std::string> identity_differences(const nlohmann::json& saved, const nlohmann::json& now);
// The same, leaf by leaf, with names for the two sides ("seed: 1 (rank 0) vs 2 (rank 1)").
std::vector<std::string> json_differences(const nlohmann::json& a, const nlohmann::json& b, const std::string& a_name,
                                          const std::string& b_name);

// A run's id: a hash of its identity at the start. Two runs with the same identity are the same
// computation (training is deterministic), so they may share an id; --keep-last prunes by it.
std::string run_id_of(const nlohmann::json& identity);

// 64-bit FNV-1a of a file's bytes as 16 hex digits (identity, not security). Throws naming the file.
std::string file_content_hash(const std::string& path, uint64_t* size_out);

// The counters of a run at a checkpoint.
struct TrainerCounters {
  int64_t step = 0;
  double tokens = 0;
  uint64_t row_serial = 0;
  double ema = 0;
  int64_t ema_n = 0;
  int64_t skipped = 0;
  int64_t optimizer_step = 0;
  int64_t epoch = 0;
  int64_t cursor = 0;
};

// What the trainer state is checked against when read.
struct TrainerStateLimits {
  int64_t num_params = 0;     // elements of optimizer.m and optimizer.v
  int64_t num_documents = 0;  // the data cursor lies in [0, num_documents]
  int64_t vocab_size = 0;     // packer ids lie in [0, vocab_size)
  int64_t seq_len = 0;        // a buffered sequence is at most one row long
};

struct TrainerState {
  TrainerCounters counters;
  std::vector<std::vector<int32_t>> packer_buffer;
  std::string run_id;
  nlohmann::json identity;  // null for checkpoints written before identities were stored
  int64_t threads = 0;      // 0 when not recorded
  int64_t world_size = 0;   // ranks of the data-parallel job that saved it (information; 0 = not recorded)
  std::string gemm;         // GEMM backend name, "" when not recorded
};

// The elements of the optimizer moments a reader keeps: [first, first + count) of the layout
// (ZeRO-1: a rank's shard). count < 0: all num_params.
struct MomentRange {
  int64_t first = 0;
  int64_t count = -1;
};

// Reads `path` (trainer_state.safetensors) and validates every field against `lim` before anything
// is used: tensor dtypes and element counts, packer lengths (non-negative, at most seq_len, summing
// to the stored ids), ids in the vocabulary, counters consistent with each other. Moments (always
// the whole layout in the file, whatever the world size or ZeRO stage that wrote it) go into m and v
// (range.count floats each, from element range.first) only after all checks pass. Throws
// modernbert::Error naming the file and the field.
// `check_identity` is called with the saved run identity (null for older checkpoints) before any
// counter is validated, and may throw.
TrainerState read_trainer_state(const std::string& path, const TrainerStateLimits& lim, float* m, float* v,
                                const std::function<void(const nlohmann::json&)>& check_identity,
                                MomentRange range = {});

// Writes the trainer state (counters, moments, packer buffer, run identity) to `path`. Not atomic by
// itself: the caller writes into a temporary checkpoint directory that is renamed when complete.
// m and v are the whole layout (num_params floats; a ZeRO-1 run gathers them first).
void write_trainer_state(const std::string& path, const TrainerState& st, const float* m, const float* v,
                         int64_t num_params);

// The run_id of a checkpoint directory, "" if it has none or cannot be read.
std::string checkpoint_run_id(const std::string& checkpoint_dir);

// Test-only fault injection: when $MODERNBERT_TEST_KILL_AT is "POINT@STEP" and matches, the process
// SIGKILLs itself (in a data-parallel job every rank that reaches the point does; rank 0 alone
// reaches the checkpoint points). Points: step (mid-step, before the optimizer update), before_state_write,
// mid_state_write (after the optimizer moments, before the packer buffer), before_rename,
// after_rename (before pruning).
void test_kill_point(const char* point, int64_t step);

}  // namespace train
}  // namespace modernbert
