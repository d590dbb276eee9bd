// The process-wide backend selection (backend.h).
#include "kernels/backend.h"

namespace modernbert::kernels {

namespace detail {
extern const Backend kCpuBackend;  // kernels/cpu/backend_cpu.cpp
// Constant-initialised (the address of a namespace-scope object), so ops called from other
// static initialisers already see the cpu backend.
const Backend* g_backend = &kCpuBackend;
}  // namespace detail

void set_backend(const Backend& b) { detail::g_backend = &b; }

}  // namespace modernbert::kernels
