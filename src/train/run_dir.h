// The output directory of a pretraining run (layout in pretrain_state.h): which files belong to a
// run, its checkpoints in step order, the guard that keeps a new run from replacing an old one,
// and the atomic checkpoint write (temporary directory, rename, --keep-last pruning).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace modernbert::train {

// "checkpoint-NNNNNNNN" (eight digits, more when the step needs them).
std::string checkpoint_name(int64_t step);

// The complete checkpoints in `dir` (a checkpoint-<digits> directory holding
// trainer_state.safetensors) as (step, path), ascending. Empty when `dir` does not exist.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir);

// The files of a run in `dir` (names relative to it): run.json, train_config.json, metrics.jsonl
// and checkpoint directories, sorted. Empty when the directory holds no run (or does not exist).
std::vector<std::string> run_files(const std::string& dir);

// Never destroys a run by accident: a directory that holds one needs `resume` or `overwrite`
// (which removes the run's files). Creates the directory and removes the .tmp-checkpoint-*
// directories an interrupted checkpoint write leaves. Errors are prefixed "pretrain: ".
void prepare_output_dir(const std::string& dir, bool resume, bool overwrite);
// The checks of prepare_output_dir alone: creates, removes and changes nothing (so that a run whose
// data or initial weights turn out unusable leaves no directory behind and no replaced run).
void check_output_dir(const std::string& dir, bool resume, bool overwrite);

// Writes checkpoint `step` of run `run_id` into `dir`: `write(tmp)` fills a temporary directory,
// which is then renamed into place (the checkpoint appears complete or not at all); a checkpoint
// of the same name is replaced only when it belongs to this run. keep_last > 0 then prunes this
// run's oldest checkpoints. Test kill points: before_rename, after_rename.
void save_checkpoint(const std::string& dir, int64_t step, const std::string& run_id, int64_t keep_last,
                     const std::function<void(const std::string& tmp)>& write);

}  // namespace modernbert::train
