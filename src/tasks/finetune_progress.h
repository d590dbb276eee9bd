// Progress of a fine-tuning run: a bar with rate, loss, LR and ETA on a terminal (redrawn in
// place), plain "finetune: ..." lines otherwise, about 50 per run so logs stay readable.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace modernbert::finetune_util {

class StepProgress {
 public:
  StepProgress(bool enabled, int64_t total_steps)
      : enabled_(enabled), tty_(isatty(fileno(stderr)) != 0), total_(std::max<int64_t>(1, total_steps)),
        every_(std::max<int64_t>(1, total_steps / 50)), start_(std::chrono::steady_clock::now()) {}

  void step(int64_t step, int64_t epoch, double loss, double lr, double tokens_per_s) {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = std::min(1.0, static_cast<double>(step) / static_cast<double>(total_));
    const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : 0;
    const int h = static_cast<int>(eta / 3600), m = static_cast<int>(eta / 60) % 60, s = static_cast<int>(eta) % 60;
    if (tty_) {
      const int width = 28, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%.*s%.*s] %5.1f%% epoch %lld step %lld/%lld | %.3gk tok/s | loss %.4f | lr %.2e | ETA %02d:%02d:%02d ",
                   filled, "############################", width - filled, "............................", 100 * frac,
                   static_cast<long long>(epoch), static_cast<long long>(step), static_cast<long long>(total_),
                   tokens_per_s / 1000, loss, lr, h, m, s);
      open_line_ = true;
    } else if (step % every_ == 0 || step == total_) {
      std::fprintf(stderr, "finetune: epoch %lld step %lld/%lld loss %.4f lr %.3g tokens/s %.0f eta %02d:%02d:%02d\n",
                   static_cast<long long>(epoch), static_cast<long long>(step), static_cast<long long>(total_), loss, lr,
                   tokens_per_s, h, m, s);
    }
  }
  // A message on its own line (ends the bar's line first).
  void message(const std::string& text) {
    if (!enabled_) return;
    if (open_line_) std::fprintf(stderr, "\n");
    open_line_ = false;
    std::fprintf(stderr, "%s\n", text.c_str());
  }

 private:
  bool enabled_, tty_;
  int64_t total_, every_;
  std::chrono::steady_clock::time_point start_;
  bool open_line_ = false;
};

}  // namespace modernbert::finetune_util
