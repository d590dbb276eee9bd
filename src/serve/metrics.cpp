#include "serve/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace modernbert::serve {

namespace {

// Prometheus floats: integers without a fraction, +Inf spelled so.
std::string num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  return std::string(buf, r.ptr);
}

// "key=value" -> key="value" (value escaped), "" -> "".
std::string label_text(const std::string& label) {
  if (label.empty()) return "";
  auto eq = label.find('=');
  std::string key = label.substr(0, eq), value = eq == std::string::npos ? "" : label.substr(eq + 1), esc;
  for (char c : value) {
    if (c == '\\' || c == '"') esc.push_back('\\');
    if (c == '\n') {
      esc += "\\n";
      continue;
    }
    esc.push_back(c);
  }
  return key + "=\"" + esc + "\"";
}

std::string braces(const std::string& a, const std::string& b = "") {
  if (a.empty() && b.empty()) return "";
  if (a.empty() || b.empty()) return "{" + a + b + "}";
  return "{" + a + "," + b + "}";
}

}  // namespace

void MetricsRegistry::declare(const std::string& name, Kind kind, const std::string& help,
                              std::vector<double> buckets) {
  std::lock_guard<std::mutex> lk(mu_);
  Family& f = families_[name];
  f.kind = kind;
  f.help = help;
  std::sort(buckets.begin(), buckets.end());
  f.bounds = std::move(buckets);
}

void MetricsRegistry::inc(const std::string& name, const std::string& label, double v) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.kind == Kind::kHistogram) return;
  it->second.series[label].value += v;
}

void MetricsRegistry::set(const std::string& name, double v, const std::string& label) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.kind == Kind::kHistogram) return;
  it->second.series[label].value = v;
}

void MetricsRegistry::observe(const std::string& name, double v, const std::string& label) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.kind != Kind::kHistogram) return;
  Family& f = it->second;
  Series& s = f.series[label];
  if (s.buckets.empty()) s.buckets.assign(f.bounds.size(), 0);
  auto b = std::lower_bound(f.bounds.begin(), f.bounds.end(), v);  // first bound >= v
  if (b != f.bounds.end()) ++s.buckets[static_cast<size_t>(b - f.bounds.begin())];
  s.value += v;
  ++s.count;
}

std::string MetricsRegistry::render() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.kind == Kind::kCounter ? "counter" : f.kind == Kind::kGauge ? "gauge" : "histogram";
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + type + "\n";
    if (f.kind != Kind::kHistogram) {
      if (f.series.empty()) out += name + " 0\n";
      for (const auto& [label, s] : f.series) out += name + braces(label_text(label)) + " " + num(s.value) + "\n";
      continue;
    }
    auto emit = [&](const std::string& label, const Series* s) {
      uint64_t cum = 0;
      for (size_t i = 0; i < f.bounds.size(); ++i) {
        cum += s ? s->buckets[i] : 0;
        out += name + "_bucket" + braces(label_text(label), "le=\"" + num(f.bounds[i]) + "\"") + " " +
               std::to_string(cum) + "\n";
      }
      const uint64_t count = s ? s->count : 0;
      out += name + "_bucket" + braces(label_text(label), "le=\"+Inf\"") + " " + std::to_string(count) + "\n";
      out += name + "_sum" + braces(label_text(label)) + " " + num(s ? s->value : 0) + "\n";
      out += name + "_count" + braces(label_text(label)) + " " + std::to_string(count) + "\n";
    };
    if (f.series.empty()) emit("", nullptr);
    for (const auto& [label, s] : f.series) emit(label, &s);
  }
  return out;
}

std::vector<double> MetricsRegistry::geometric(double first, double factor, int n) {
  std::vector<double> b;
  double v = first;
  for (int i = 0; i < n; ++i) b.push_back(v *= factor);
  return b;
}

std::vector<double> MetricsRegistry::powers_of_two(int first_exp, int last_exp) {
  std::vector<double> b;
  for (int e = first_exp; e <= last_exp; ++e) b.push_back(std::ldexp(1.0, e));
  return b;
}

void declare_tei_metrics(MetricsRegistry& m) {
  using K = MetricsRegistry::Kind;
  const auto dur = MetricsRegistry::geometric(0.00001, 1.5, 35);  // TEI's duration buckets
  m.declare("te_request_count", K::kCounter, "Requests received by an inference route");
  m.declare("te_request_success", K::kCounter, "Requests answered with 200");
  m.declare("te_request_failure", K::kCounter, "Requests answered with an error, by error type");
  m.declare("te_request_duration", K::kHistogram, "Request duration in seconds (successful requests)", dur);
  m.declare("te_request_tokenization_duration", K::kHistogram, "Tokenization time per request in seconds", dur);
  m.declare("te_request_queue_duration", K::kHistogram, "Time from submit to the first batch in seconds", dur);
  m.declare("te_request_inference_duration", K::kHistogram, "Time from the first batch to done in seconds", dur);
  m.declare("te_request_input_length", K::kHistogram, "Tokens per input sequence",
            MetricsRegistry::powers_of_two(0, 13));
  m.declare("te_batch_next_size", K::kHistogram, "Sequences per forward batch", MetricsRegistry::powers_of_two(0, 12));
  m.declare("te_batch_next_tokens", K::kHistogram, "Tokens per forward batch", MetricsRegistry::powers_of_two(0, 20));
  m.declare("te_batch_inference_duration", K::kHistogram, "Forward + post-processing time per batch in seconds", dur);
  m.declare("te_batch_inference_success", K::kCounter, "Forward batches run");
  m.declare("te_queue_size", K::kGauge, "Requests submitted and not done");
  m.declare("te_model_ready", K::kGauge, "1 once the model is loaded and warm");
}

}  // namespace modernbert::serve
