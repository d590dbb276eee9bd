// attention_bf16 of the ref backend (#15): attention with both products in bf16 (contract in
// kernels/backend.h). STUB: being written.
#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels::ref {

void attention_bf16(const float*, float*, const int64_t*, int64_t, int64_t, int64_t, int64_t, float*,
                    const RopeTable*) {
  throw Error("ref attention_bf16: not implemented yet");
}

}  // namespace modernbert::kernels::ref
