// Progress of a training run on stderr: a bar with rate, loss, LR and ETA on a terminal (redrawn
// in place), plain lines otherwise. Two line styles, one per kind of run:
//   kTokens (pretraining): "pretrain: step S tokens N loss L lr X grad_norm G tok/s R eta Es" every
//     `plain_every` steps (0 = never); the bar's rate is the mean since the start; the fraction is
//     max(step / total_steps, tokens / total_tokens).
//   kEpochs (fine-tuning): "finetune: epoch E step S/T loss L lr X tokens/s R eta HH:MM:SS" about
//     50 times per run (every max(1, T/50) steps and at T); the rate is the step's own.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace modernbert::train {

class Progress {
 public:
  enum class Style { kTokens, kEpochs };
  struct Options {
    bool enabled = true;
    std::string label = "train";  // line prefix ("pretrain", "finetune")
    Style style = Style::kEpochs;
    int64_t total_steps = 0;  // > 0: the run ends at this step (kEpochs: the bar's denominator)
    double total_tokens = 0;  // > 0: the run ends at this many tokens (kTokens)
    int64_t plain_every = 0;  // kTokens: plain line every N steps (0 = none)
  };
  // What one step reports; rate_step is this step's tokens/s, rate_mean the mean since the start.
  struct Point {
    int64_t step = 0, epoch = 0;
    double tokens = 0, loss = 0, lr = 0, grad_norm = 0, rate_step = 0, rate_mean = 0;
  };

  explicit Progress(Options o)
      : o_(std::move(o)), tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()) {
    if (o_.style == Style::kEpochs) {
      o_.total_steps = std::max<int64_t>(1, o_.total_steps);
      o_.plain_every = std::max<int64_t>(1, o_.total_steps / 50);
    }
  }

  void step(const Point& p) {
    if (!o_.enabled) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    double frac = 0;
    if (o_.total_steps > 0) frac = static_cast<double>(p.step) / static_cast<double>(o_.total_steps);
    if (o_.total_tokens > 0) frac = std::max(frac, p.tokens / o_.total_tokens);
    frac = std::min(1.0, frac);
    const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : 0;
    const int h = static_cast<int>(eta / 3600), m = static_cast<int>(eta / 60) % 60, s = static_cast<int>(eta) % 60;
    const bool epochs = o_.style == Style::kEpochs;
    if (tty_) {
      char where[96];
      if (epochs)
        std::snprintf(where, sizeof where, "epoch %lld step %lld/%lld", static_cast<long long>(p.epoch),
                      static_cast<long long>(p.step), static_cast<long long>(o_.total_steps));
      else
        std::snprintf(where, sizeof where, "step %lld", static_cast<long long>(p.step));
      const int width = 28, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%.*s%.*s] %5.1f%% %s | %.3gk tok/s | loss %.4f | lr %.2e | ETA %02d:%02d:%02d ", filled,
                   "############################", width - filled, "............................", 100 * frac, where,
                   (epochs ? p.rate_step : p.rate_mean) / 1000, p.loss, p.lr, h, m, s);
      open_line_ = true;
    } else if (epochs) {
      if (p.step % o_.plain_every == 0 || p.step == o_.total_steps)
        std::fprintf(stderr, "%s: epoch %lld step %lld/%lld loss %.4f lr %.3g tokens/s %.0f eta %02d:%02d:%02d\n",
                     o_.label.c_str(), static_cast<long long>(p.epoch), static_cast<long long>(p.step),
                     static_cast<long long>(o_.total_steps), p.loss, p.lr, p.rate_step, h, m, s);
    } else if (o_.plain_every > 0 && p.step % o_.plain_every == 0) {
      std::fprintf(stderr, "%s: step %lld tokens %.0f loss %.4f lr %.3e grad_norm %.3g tok/s %.0f eta %.0fs\n",
                   o_.label.c_str(), static_cast<long long>(p.step), p.tokens, p.loss, p.lr, p.grad_norm, p.rate_mean,
                   eta);
    }
  }

  // A message on its own line (ends the bar's line first).
  void message(const std::string& text) {
    if (!o_.enabled) return;
    end_line();
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  // Ends the bar's line (at the end of a run).
  void end_line() {
    if (open_line_) std::fprintf(stderr, "\n");
    open_line_ = false;
  }

 private:
  Options o_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  bool open_line_ = false;
};

}  // namespace modernbert::train
