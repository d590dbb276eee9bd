// Which x86 extensions this build was compiled for: a data-only translation unit compiled with the
// library's flags (e.g. -march=native), read by isa_check.cpp (compiled for baseline x86-64).
#include <cstdint>

namespace modernbert::kernels {

// Bit k set = extension k of the table in isa_check.cpp (keep the orders equal).
extern const uint64_t kCompiledIsaMask;
const uint64_t kCompiledIsaMask = 0
#ifdef __SSE4_2__
                                  | (1ull << 0)
#endif
#ifdef __POPCNT__
                                  | (1ull << 1)
#endif
#ifdef __AVX__
                                  | (1ull << 2)
#endif
#ifdef __AVX2__
                                  | (1ull << 3)
#endif
#ifdef __FMA__
                                  | (1ull << 4)
#endif
#ifdef __F16C__
                                  | (1ull << 5)
#endif
#ifdef __BMI__
                                  | (1ull << 6)
#endif
#ifdef __BMI2__
                                  | (1ull << 7)
#endif
#ifdef __LZCNT__
                                  | (1ull << 8)
#endif
#ifdef __MOVBE__
                                  | (1ull << 9)
#endif
#ifdef __AVX512F__
                                  | (1ull << 10)
#endif
#ifdef __AVX512CD__
                                  | (1ull << 11)
#endif
#ifdef __AVX512BW__
                                  | (1ull << 12)
#endif
#ifdef __AVX512DQ__
                                  | (1ull << 13)
#endif
#ifdef __AVX512VL__
                                  | (1ull << 14)
#endif
#ifdef __AVX512VNNI__
                                  | (1ull << 15)
#endif
#ifdef __AVX512BF16__
                                  | (1ull << 16)
#endif
#ifdef __AVX512VBMI__
                                  | (1ull << 17)
#endif
#ifdef __AVX512IFMA__
                                  | (1ull << 18)
#endif
#ifdef __AVX512VBMI2__
                                  | (1ull << 19)
#endif
#ifdef __AVX512BITALG__
                                  | (1ull << 20)
#endif
#ifdef __AVX512VPOPCNTDQ__
                                  | (1ull << 21)
#endif
#ifdef __AVX512FP16__
                                  | (1ull << 22)
#endif
#ifdef __AVXVNNI__
                                  | (1ull << 23)
#endif
#ifdef __AMX_TILE__
                                  | (1ull << 24)
#endif
#ifdef __AMX_INT8__
                                  | (1ull << 25)
#endif
#ifdef __AMX_BF16__
                                  | (1ull << 26)
#endif
#ifdef __GFNI__
                                  | (1ull << 27)
#endif
#ifdef __VAES__
                                  | (1ull << 28)
#endif
#ifdef __VPCLMULQDQ__
                                  | (1ull << 29)
#endif
#ifdef __SHA__
                                  | (1ull << 30)
#endif
#ifdef __ADX__
                                  | (1ull << 31)
#endif
#ifdef __PCLMUL__
                                  | (1ull << 32)
#endif
#ifdef __AES__
                                  | (1ull << 33)
#endif
#ifdef __RDRND__
                                  | (1ull << 34)
#endif
    ;

}  // namespace modernbert::kernels
