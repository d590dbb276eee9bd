// Training throughput of one MLM optimizer step (forward + backward + optimizer), the unit of
// `modernbert pretrain`, on a packed batch: --rows rows of --seq-len tokens, each row one
// document (so a padded peer computes exactly the same attention), 30% of positions labelled
// (sparse prediction: only labelled rows reach the decoder). Same seed -> same batch; with
// --write-batch the batch is written as JSONL ({"input_ids", "labels"} per row) for the PyTorch
// peer (bench/peers/torch_train_bench.py), so both train on identical inputs.
//
// usage: bench_train --model DIR [--rows 4] [--seq-len 512] [--warmup 1] [--repeat 3]
//                    [--threads N] [--optimizer stableadamw|adamw] [--seed 0] [--write-batch F]
// Prints one JSON line: tokens (per step), seconds_median, seconds_min, tokens_per_s (median),
// loss (first step), peak_rss_mib.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/model_dir.h"
#include "modernbert/optimizer.h"
#include "modernbert/pretrain.h"
#include "modernbert/train_model.h"

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) try {
  std::string model, write_batch, optimizer = "stableadamw";
  long long rows = 4, seq_len = 512, warmup = 1, repeat = 3, threads = 0, seed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: bench_train --model DIR [--rows 4] [--seq-len 512] [--warmup 1] [--repeat 3] [--threads N]\n"
                  "                   [--optimizer stableadamw|adamw] [--seed 0] [--write-batch F]\n");
      return 0;
    }
    if (i + 1 >= argc) throw modernbert::Error(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--model") model = v;
    else if (a == "--write-batch") write_batch = v;
    else if (a == "--optimizer") optimizer = v;
    else if (a == "--rows") rows = std::atoll(v.c_str());
    else if (a == "--seq-len") seq_len = std::atoll(v.c_str());
    else if (a == "--warmup") warmup = std::atoll(v.c_str());
    else if (a == "--repeat") repeat = std::atoll(v.c_str());
    else if (a == "--threads") threads = std::atoll(v.c_str());
    else if (a == "--seed") seed = std::atoll(v.c_str());
    else throw modernbert::Error("unknown flag " + a);
  }
  if (model.empty()) throw modernbert::Error("--model is required");
  if (rows < 1 || seq_len < 2 || repeat < 1 || warmup < 0) throw modernbert::Error("bad --rows/--seq-len/--repeat/--warmup");
  if (threads > 0) {
    modernbert::kernels::set_num_threads(static_cast<int>(threads));
  }
  modernbert::LoadOptions lo;
  lo.zero_copy = false;
  modernbert::LoadedModel m = modernbert::load_model_dir(model, lo);
  if (!m.weights.heads().mlm) throw modernbert::Error(model + ": needs an MLM head");
  const int64_t V = m.config.vocab_size;

  // The batch: random ids (below the special tokens' range), 30% of positions labelled.
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  modernbert::TrainBatch tb;
  std::ofstream out;
  if (!write_batch.empty()) {
    out.open(write_batch, std::ios::trunc);
    if (!out) throw modernbert::Error(write_batch + ": cannot open for writing");
  }
  for (long long r = 0; r < rows; ++r) {
    std::vector<int32_t> ids(static_cast<size_t>(seq_len)), labels(static_cast<size_t>(seq_len), -100);
    for (auto& x : ids) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(std::min<int64_t>(V, 50000)));
    for (long long t = 0; t < seq_len; ++t)
      if (rng() % 10 < 3) labels[static_cast<size_t>(t)] = ids[static_cast<size_t>(t)];
    tb.batch.add(ids);
    tb.token_labels.insert(tb.token_labels.end(), labels.begin(), labels.end());
    if (out) out << nlohmann::json{{"input_ids", ids}, {"labels", labels}}.dump() << "\n";
  }
  if (out) out.close();

  modernbert::TrainModel tm(m.weights);
  modernbert::OptimizerConfig oc;
  oc.type = modernbert::parse_optimizer_type(optimizer);
  oc.lr = 1e-5;  // small: the weights barely move between timed steps
  modernbert::Optimizer opt(m.weights.specs(), oc);
  std::vector<float> grads(m.weights.num_params());
  std::vector<double> times;
  double first_loss = 0;
  for (long long s = 0; s < warmup + repeat; ++s) {
    const double t0 = now();
    std::fill(grads.begin(), grads.end(), 0.0f);
    const auto lr = tm.forward_backward(tb, modernbert::TaskType::kMlm, grads.data());
    opt.step(m.weights.data(), grads.data(), oc.lr);
    const double dt = now() - t0;
    if (s == 0) first_loss = lr.loss;
    if (s >= warmup) times.push_back(dt);
    std::fprintf(stderr, "bench_train: step %lld loss %.4f %.2f s\n", s + 1, lr.loss, dt);
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double tokens = static_cast<double>(rows * seq_len);
  std::printf("%s\n", nlohmann::json{{"system", "ours"}, {"tokens", rows * seq_len}, {"rows", rows}, {"seq_len", seq_len},
                                     {"seconds_median", med}, {"seconds_min", times.front()},
                                     {"tokens_per_s", tokens / med}, {"loss", first_loss},
                                     {"optimizer", optimizer}, {"peak_rss_mib", static_cast<double>(ru.ru_maxrss) / 1024.0}}
                          .dump()
                          .c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train: %s\n", e.what());
  return 1;
}
