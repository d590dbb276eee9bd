// The pretraining run directory (see run_dir.h).
#include "train/run_dir.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include "modernbert/error.h"
#include "train/pretrain_state.h"

namespace fs = std::filesystem;

namespace modernbert::train {

std::string checkpoint_name(int64_t step) {
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

namespace {
std::string comma_joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// The run files in `dir` that an --overwrite removes (none with resume); throws where the directory
// holds a run and neither flag was given, or is not a directory.
std::vector<std::string> files_to_replace(const std::string& dir, bool resume, bool overwrite) {
  std::vector<std::string> existing = run_files(dir);
  if (existing.empty() || resume) return {};
  if (!overwrite)
    throw Error("pretrain: " + dir + " already holds a run (" + comma_joined(existing) +
                "); pass --resume to continue it or --overwrite to replace it");
  return existing;
}
}  // namespace

void check_output_dir(const std::string& dir, bool resume, bool overwrite) {
  (void)files_to_replace(dir, resume, overwrite);
}

void prepare_output_dir(const std::string& dir, bool resume, bool overwrite) {
  const std::vector<std::string> existing = files_to_replace(dir, resume, overwrite);
  if (!existing.empty()) {
    for (const auto& n : existing) fs::remove_all(fs::path(dir) / n);
    std::fprintf(stderr, "pretrain: --overwrite: removed %s from %s\n", comma_joined(existing).c_str(), dir.c_str());
  }
  fs::create_directories(dir);
  // A checkpoint interrupted mid-write leaves only a .tmp-* directory (never a half checkpoint).
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".tmp-checkpoint-", 0) == 0) fs::remove_all(e.path());
}

void save_checkpoint(const std::string& dir, int64_t step, const std::string& run_id, int64_t keep_last,
                     const std::function<void(const std::string& tmp)>& write) {
  const std::string name = checkpoint_name(step);
  const std::string final_dir = dir + "/" + name;
  const std::string tmp = dir + "/.tmp-" + name;
  if (fs::exists(final_dir) && checkpoint_run_id(final_dir) != run_id)
    throw Error("pretrain: " + final_dir + " belongs to another run; refusing to replace it");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write(tmp);
  test_kill_point("before_rename", step);
  fs::remove_all(final_dir);   // only ever a checkpoint of this run (checked above)
  fs::rename(tmp, final_dir);  // the checkpoint appears complete or not at all
  test_kill_point("after_rename", step);
  // --keep-last: prune only this run's checkpoints, oldest first.
  std::vector<std::string> ours;
  for (const auto& [s, d] : list_checkpoints(dir))
    if (checkpoint_run_id(d) == run_id) ours.push_back(d);
  for (size_t k = 0; keep_last > 0 && ours.size() - k > static_cast<size_t>(keep_last); ++k) fs::remove_all(ours[k]);
}

}  // namespace modernbert::train
