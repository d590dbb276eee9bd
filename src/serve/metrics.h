// A small Prometheus registry: counters, gauges and histograms with fixed buckets, optionally with
// one label, rendered in the text exposition format (version 0.0.4) for GET /metrics.
//
// The names are text-embeddings-inference's (router/src/prometheus.rs and its metrics! calls), so
// dashboards built for TEI work unchanged:
//   te_request_count{method}              counter   requests received by an inference route
//   te_request_success{method}            counter   answered 200
//   te_request_failure{err}               counter   answered with an error (err = TEI error_type, or
//                                                   "disconnected" when the client went away)
//   te_request_duration                   histogram seconds, whole request (successes)
//   te_request_tokenization_duration      histogram seconds spent tokenizing one request
//   te_request_queue_duration             histogram seconds from submit to the first batch
//   te_request_inference_duration         histogram seconds from the first batch to done
//   te_request_input_length               histogram tokens per sequence
//   te_batch_next_size                    histogram sequences per forward batch
//   te_batch_next_tokens                  histogram tokens per forward batch
//   te_batch_inference_duration           histogram seconds per batch (forward + post-processing)
//   te_batch_inference_success            counter   batches run
//   te_queue_size                         gauge     requests submitted and not done
//   te_model_ready                        gauge     1 once the model is loaded and warm (ours)
// Buckets: durations 1.5e-5 * 1.5^k (k = 1..35, TEI's), batch sizes 2^0..2^12, batch tokens
// 2^0..2^20, input length 2^0..2^13.
//
// Thread-safe: one mutex per registry (a handful of updates per request; /metrics is rare).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace modernbert::serve {

class MetricsRegistry {
 public:
  enum class Kind { kCounter, kGauge, kHistogram };
  // Declare before use (render() lists every declared family, also with no samples yet).
  void declare(const std::string& name, Kind kind, const std::string& help, std::vector<double> buckets = {});

  // `label` is "key=value" (one label) or "" (none). Unknown names are ignored.
  void inc(const std::string& name, const std::string& label = "", double v = 1);
  void set(const std::string& name, double v, const std::string& label = "");
  void observe(const std::string& name, double v, const std::string& label = "");

  std::string render() const;

  // Bucket helpers.
  static std::vector<double> geometric(double first, double factor, int n);
  static std::vector<double> powers_of_two(int first_exp, int last_exp);

 private:
  struct Series {
    double value = 0;               // counter / gauge; histogram sum
    uint64_t count = 0;             // histogram observations
    std::vector<uint64_t> buckets;  // histogram: observations <= bounds[i] (not cumulative)
  };
  struct Family {
    Kind kind = Kind::kCounter;
    std::string help;
    std::vector<double> bounds;
    std::map<std::string, Series> series;  // by label ("" = no label)
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// The registry with TEI's families declared.
void declare_tei_metrics(MetricsRegistry& m);

}  // namespace modernbert::serve
