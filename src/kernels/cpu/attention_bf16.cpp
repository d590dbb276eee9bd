// attention_bf16 of the cpu backend (#15): attention with both products in bf16 (contract in
// kernels/backend.h). STUB: being written.
#include "kernels/cpu/kernels.h"
#include "modernbert/error.h"

namespace modernbert::kernels::cpu {

void attention_bf16(const float*, float*, const int64_t*, int64_t, int64_t, int64_t, int64_t, float*,
                    const RopeTable*) {
  throw Error("cpu attention_bf16: not implemented yet");
}

}  // namespace modernbert::kernels::cpu
