#include "kernels/cpu/profile.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace modernbert::kernels::prof {

namespace {
std::mutex g_mutex;
std::vector<Entry>& table() {
  static std::vector<Entry> t;
  return t;
}
}  // namespace

std::vector<Entry> totals() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return table();
}

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  table().clear();
}

bool enabled() {
  static const bool on = std::getenv("MODERNBERT_PROFILE") != nullptr;
  return on;
}

void add(const char* name, double wall, double cpu) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& t = table();
  Entry* e = nullptr;
  for (auto& x : t)
    if (x.name == name || std::strcmp(x.name, name) == 0) {
      e = &x;
      break;
    }
  if (!e) {
    t.push_back(Entry{name});
    e = &t.back();
  }
  e->wall += wall;
  e->cpu += cpu;
  e->calls += 1;
}

}  // namespace modernbert::kernels::prof
