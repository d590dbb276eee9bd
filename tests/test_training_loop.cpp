// The training loop (modernbert/training_loop.h) with a scripted task: gradient accumulation over
// micro-batches, the JSONL record, evaluation every N steps, checkpoint cadence, the skip guard
// (loss spike, non-finite), the LR clock, and epoch mode (skipped slots, best epoch, patience).
// Pretraining and fine-tuning run through it end to end in test_train / test_finetune.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "modernbert/training_loop.h"

namespace {

using namespace modernbert;
using train::LoopConfig;
using train::LoopState;

// Micro-batch k of every step adds 1 to gradient element k and reports losses[step][k].
struct ScriptedTask : train::TrainingTask {
  std::vector<std::vector<double>> losses;  // per step, per micro-batch
  std::vector<double> scores;               // per evaluation
  int64_t skip_slot = -1;                   // epoch mode: this slot of every epoch yields no step
  std::vector<int64_t> saves, updates, epochs_begun;
  std::vector<std::string> grads_seen;  // "ok" when the gradients were zero at micro-batch 0
  size_t evals = 0;

  train::StepPlan plan_step(const LoopState& s, int64_t slot) override {
    train::StepPlan p;
    if (slot == skip_slot) {
      p.skip = true;
      return p;
    }
    p.micro_batches = static_cast<int64_t>(losses.at(static_cast<size_t>(s.step)).size());
    p.tokens = 10;
    return p;
  }
  train::MicroResult forward_backward(const LoopState& s, int64_t micro, float* grads) override {
    if (micro == 0) grads_seen.push_back(grads[0] == 0 && grads[1] == 0 && grads[2] == 0 ? "ok" : "dirty");
    grads[micro] += 1.0f;
    return {losses.at(static_cast<size_t>(s.step)).at(static_cast<size_t>(micro)), micro};
  }
  void begin_epoch(int64_t epoch) override { epochs_begun.push_back(epoch); }
  void before_update(const LoopState& s) override { updates.push_back(s.step + 1); }
  void add_step_fields(const LoopState&, const train::StepReport& r, nlohmann::json& rec) override {
    rec["correct"] = r.correct;
  }
  train::EvalResult evaluate(const LoopState& s) override {
    train::EvalResult e;
    e.score = scores.at(evals++);
    e.metrics = {{"eval_score", e.score}};
    e.message = "eval at " + std::to_string(s.step);
    return e;
  }
  void save(const LoopState& s) override { saves.push_back(s.step); }
};

struct Params {
  std::vector<float> w = std::vector<float>(3, 1.0f), g = std::vector<float>(3, 0.0f);
  Optimizer opt{{ParamSpec{"w", {3}, InitRule::kIn, false}}, OptimizerConfig{}};
  std::vector<train::ParamGroup> groups() { return {{&opt, w.data(), g.data(), w.size()}}; }
};

std::vector<nlohmann::json> records(const std::string& log) {
  std::vector<nlohmann::json> out;
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
  return out;
}

LoopConfig base_config(std::ostream& log) {
  LoopConfig c;
  c.peak_lr = 0.01;
  c.schedule.warmup_tokens = 0;  // constant LR
  c.log = &log;
  c.progress = false;
  return c;
}

TEST(TrainingLoop, StreamModeAccumulatesMicroBatchesLogsEvaluatesAndSaves) {
  ScriptedTask task;
  task.losses = {{0.5, 1.0, 1.5}, {0.25, 0.25, 0.5}, {1, 1, 1}, {2, 2, 2}};
  task.scores = {0.75};
  Params p;
  std::ostringstream log;
  LoopConfig c = base_config(log);
  c.max_steps = 4;
  c.log_grad_norm = true;
  c.eval_every = 3;
  c.save_every = 2;
  c.save_at_end = true;
  const train::LoopResult r = train::run_training_loop(c, task, p.groups());
  EXPECT_EQ(r.state.step, 4);
  EXPECT_DOUBLE_EQ(r.state.tokens, 40.0);
  EXPECT_DOUBLE_EQ(r.last_loss, 6.0);
  EXPECT_EQ(task.grads_seen, (std::vector<std::string>{"ok", "ok", "ok", "ok"}));
  EXPECT_EQ(task.saves, (std::vector<int64_t>{2, 4}));  // the last step was saved: no extra final save
  EXPECT_EQ(task.updates, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(p.opt.step_count(), 4);
  const auto recs = records(log.str());
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0]["step"], 1);
  EXPECT_DOUBLE_EQ(recs[0]["loss"].get<double>(), 3.0);  // summed over the micro-batches
  EXPECT_EQ(recs[0]["correct"], 0 + 1 + 2);
  EXPECT_DOUBLE_EQ(recs[0]["grad_norm"].get<double>(), std::sqrt(3.0));
  EXPECT_DOUBLE_EQ(recs[0]["lr"].get<double>(), 0.01);
  EXPECT_FALSE(recs[0].contains("type"));  // stream mode: no epoch fields
  EXPECT_FALSE(recs[1].contains("eval_score"));
  EXPECT_DOUBLE_EQ(recs[2]["eval_score"].get<double>(), 0.75);  // merged into step 3's record
  // The loss EMA: first loss, then 0.9 ema + 0.1 loss.
  EXPECT_DOUBLE_EQ(r.state.ema, 0.9 * (0.9 * (0.9 * 3.0 + 0.1 * 1.0) + 0.1 * 3.0) + 0.1 * 6.0);
  EXPECT_EQ(r.state.ema_n, 4);
}

TEST(TrainingLoop, SkipGuardSkipsSpikesAndNonFiniteStepsButCountsThem) {
  ScriptedTask task;
  task.losses = {{1.0}, {1.0}, {100.0}, {std::nan("")}, {}, {1.5}};
  Params p;
  std::ostringstream log;
  LoopConfig c = base_config(log);
  c.max_steps = 6;
  c.skip_non_finite = true;
  c.spike_factor = 2;
  c.spike_warmup_steps = 2;
  const train::LoopResult r = train::run_training_loop(c, task, p.groups());
  EXPECT_EQ(r.state.step, 6);
  EXPECT_EQ(r.state.skipped, 3);  // the spike, the NaN loss, the step without micro-batches
  EXPECT_EQ(p.opt.step_count(), 3);
  EXPECT_EQ(r.state.ema_n, 3);
  EXPECT_DOUBLE_EQ(r.state.ema, 0.9 * 1.0 + 0.1 * 1.5);
  EXPECT_DOUBLE_EQ(r.state.tokens, 60.0);  // skipped steps still consume their data
  const auto recs = records(log.str());
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_FALSE(recs[1].contains("skipped"));
  EXPECT_EQ(recs[2]["skipped"], "loss spike");
  EXPECT_EQ(recs[3]["skipped"], "non-finite loss or gradient");
  EXPECT_TRUE(recs[3]["loss"].is_null());
  EXPECT_EQ(recs[4]["skipped"], "non-finite loss or gradient");  // no micro-batches: NaN loss
  EXPECT_FALSE(recs[5].contains("skipped"));
  EXPECT_TRUE(task.saves.empty());  // save_every 0, no save_at_end
}

TEST(TrainingLoop, LrFollowsTheScheduleInStepsOrTokens) {
  for (const auto clock : {LoopConfig::Clock::kSteps, LoopConfig::Clock::kTokens}) {
    ScriptedTask task;
    task.losses = {{1}, {1}, {1}};
    Params p;
    std::ostringstream log;
    LoopConfig c = base_config(log);
    c.max_steps = 3;
    c.clock = clock;
    c.schedule.warmup_tokens = clock == LoopConfig::Clock::kSteps ? 4 : 40;  // 10 tokens per step
    train::run_training_loop(c, task, p.groups());
    const auto recs = records(log.str());
    ASSERT_EQ(recs.size(), 3u);
    for (int k = 0; k < 3; ++k) EXPECT_DOUBLE_EQ(recs[static_cast<size_t>(k)]["lr"].get<double>(), 0.01 * k / 4.0);
  }
}

TEST(TrainingLoop, EpochModeSelectsTheBestEpochAndStopsOnPatience) {
  ScriptedTask task;
  task.losses.assign(20, {1.0});
  task.losses[2] = {3.0};  // epoch 2's steps are 3 and 4
  task.scores = {0.5, 0.7, 0.6, 0.7, 0.9};
  task.skip_slot = 1;  // slots 0 and 2 of 3 are steps
  Params p;
  std::ostringstream log;
  LoopConfig c = base_config(log);
  c.epochs = 5;
  c.steps_per_epoch = 3;
  c.eval_each_epoch = true;
  c.patience = 2;
  c.metric_name = "score";
  const train::LoopResult r = train::run_training_loop(c, task, p.groups());
  EXPECT_EQ(task.epochs_begun, (std::vector<int64_t>{1, 2, 3, 4}));  // stopped after epoch 4
  EXPECT_EQ(r.state.step, 8);
  EXPECT_EQ(r.epochs_run, 4);
  EXPECT_EQ(r.best_epoch, 2);
  EXPECT_DOUBLE_EQ(r.best_score, 0.7);                  // a tie (epoch 4) is no improvement
  EXPECT_EQ(task.saves, (std::vector<int64_t>{2, 4}));  // the best epochs, after their last step
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_DOUBLE_EQ(r.history[1]["train_loss"].get<double>(), 2.0);  // mean over the epoch's steps
  EXPECT_EQ(r.history[1]["step"], 4);
  EXPECT_EQ(r.history[2]["improved"], false);
  const auto recs = records(log.str());
  ASSERT_EQ(recs.size(), 8u + 4u + 1u);
  EXPECT_EQ(recs[0]["type"], "step");
  EXPECT_EQ(recs[0]["epoch"], 1);
  EXPECT_EQ(recs[2]["type"], "eval");
  EXPECT_EQ(recs[2]["dev"]["eval_score"], 0.5);
  EXPECT_EQ(recs.back()["type"], "done");
  EXPECT_EQ(recs.back()["steps"], 8);
  EXPECT_EQ(recs.back()["epochs"], 4);
  EXPECT_EQ(recs.back()["best_epoch"], 2);
  EXPECT_DOUBLE_EQ(recs.back()["score"].get<double>(), 0.7);
}

// Early stopping and the epoch records: the first epoch always counts, ties do not improve, and
// patience counts the epochs since the best one.
TEST(TrainingLoop, EpochTrackerBestEpochAndPatience) {
  modernbert::train::LoopResult res;
  std::ostringstream log;
  modernbert::train::EpochTracker tracker(res, log, /*patience=*/2, "accuracy");
  const std::vector<double> metric = {0.5, 0.6, 0.6, 0.55, 0.9};
  std::vector<bool> improved;
  int64_t stopped_after = 0, steps = 0;
  for (int64_t e = 1; e <= 5; ++e) {
    steps += 10;
    improved.push_back(tracker.end_epoch(e, steps, metric[static_cast<size_t>(e - 1)],
                                         {{"accuracy", metric[static_cast<size_t>(e - 1)]}}, 1.0 / e));
    if (tracker.patience_exhausted()) {
      stopped_after = e;
      break;
    }
  }
  EXPECT_EQ(improved, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(stopped_after, 4);
  EXPECT_EQ(res.best_epoch, 2);
  EXPECT_DOUBLE_EQ(res.best_score, 0.6);
  EXPECT_EQ(res.epochs_run, 4);
  ASSERT_EQ(res.history.size(), 4u);
  tracker.finish(steps);
  std::istringstream in(log.str());
  std::string line;
  std::vector<nlohmann::json> recs;
  while (std::getline(in, line)) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[1]["type"], "eval");
  EXPECT_EQ(recs[1]["step"], 20);
  EXPECT_EQ(recs[2]["improved"], false);
  EXPECT_EQ(recs[4]["type"], "done");
  EXPECT_EQ(recs[4]["best_epoch"], 2);
  EXPECT_EQ(recs[4]["epochs"], 4);
  EXPECT_DOUBLE_EQ(recs[4]["accuracy"].get<double>(), 0.6);
}

}  // namespace
