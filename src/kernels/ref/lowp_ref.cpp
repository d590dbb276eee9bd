// Reduced-precision inference ops of the reference backend (#15): plain loops, double
// accumulation, the int8 integer core exact. Linear over bf16 / f16 / int8 weights, the typed
// embedding gather, per-row int8 quantization and the exact int8 GEMM, and the scalar bf16 / f16
// conversions they (and the tests) use.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels::ref {

uint16_t bf16_from_float(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);  // NaN stays (quiet) NaN
  // Round to nearest even on the 16 bits dropped: add 0x7fff plus the kept part's lowest bit.
  return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

float bf16_to_float(uint16_t h) {
  const uint32_t b = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

float f16_to_float(uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -24);  // subnormal
  return sign * std::ldexp(static_cast<float>(1024 + m), e - 25);
}

uint16_t f16_from_float(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000u : 0u;
  const float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (a < std::ldexp(1.0f, -14))                                    // subnormal: units of 2^-24
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(a * std::ldexp(1.0f, 24))));
  int e;
  const float fr = std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
  const auto mant = static_cast<uint32_t>(std::nearbyint((fr * 2.0f - 1.0f) * 1024.0f));
  // A mantissa rounded up to 1024 carries into the exponent (also up to inf), as it should.
  return static_cast<uint16_t>(sign | ((static_cast<uint32_t>(e - 1 + 15) << 10) + mant));
}

namespace {
// Y[i, j] = bias[j] + Σ_k x[i, k] w[j, k] in double (dense x [M,K], w [N,K]), rounded once.
void linear_f64_rows(const double* x, const double* w, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                     int64_t ldy) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = bias ? bias[j] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[i * K + k] * w[j * K + k];
      Y[i * ldy + j] = static_cast<float>(s);
    }
}
}  // namespace

void linear_bf16(const float* X, const uint16_t* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                 int64_t ldx, int64_t ldy, bool round_x) {
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  std::vector<double> x(static_cast<size_t>(M * K)), w(static_cast<size_t>(N * K));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const float v = X[i * ldx + k];
      x[static_cast<size_t>(i * K + k)] = round_x ? bf16_to_float(bf16_from_float(v)) : v;
    }
  for (int64_t i = 0; i < N * K; ++i) w[static_cast<size_t>(i)] = bf16_to_float(W[i]);
  linear_f64_rows(x.data(), w.data(), bias, Y, M, N, K, ldy);
}

namespace {

void linear_f16(const float* X, const uint16_t* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                int64_t ldx, int64_t ldy) {
  std::vector<double> x(static_cast<size_t>(M * K)), w(static_cast<size_t>(N * K));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) x[static_cast<size_t>(i * K + k)] = X[i * ldx + k];
  for (int64_t i = 0; i < N * K; ++i) w[static_cast<size_t>(i)] = f16_to_float(W[i]);
  linear_f64_rows(x.data(), w.data(), bias, Y, M, N, K, ldy);
}

void linear_int8(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                 int64_t ldx, int64_t ldy) {
  if (!W.scale) throw Error("ref linear: int8 weights without their per-channel scales");
  std::vector<int8_t> q(static_cast<size_t>(M * K));
  std::vector<float> sx(static_cast<size_t>(M));
  quantize_rows_i8(X, ldx, M, K, q.data(), sx.data());
  std::vector<int32_t> acc(static_cast<size_t>(M * N));
  gemm_i8(q.data(), static_cast<const int8_t*>(W.data), acc.data(), M, N, K);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const float a = static_cast<float>(acc[static_cast<size_t>(i * N + j)]);
      const float s = sx[static_cast<size_t>(i)];
      float y;
      if (!std::isfinite(s))
        y = std::numeric_limits<float>::quiet_NaN();
      else if (bias)
        y = std::fma(a, s * W.scale[j], bias[j]);  // precision.h's formula, one rounding for "* +"
      else
        y = a * (s * W.scale[j]);
      Y[i * ldy + j] = y;
    }
}

}  // namespace

void linear(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
            int64_t ldx, int64_t ldy) {
  if (W.type == Precision::kF32) return gemm(X, static_cast<const float*>(W.data), bias, Y, M, N, K, false, ldx, ldy);
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  switch (W.type) {
    case Precision::kBF16:
      // The cpu backend's choice on this machine (native bf16 rounds X; the widening path does not).
      return linear_bf16(X, static_cast<const uint16_t*>(W.data), bias, Y, M, N, K, ldx, ldy, linear_rounds_x_bf16());
    case Precision::kF16:
      return linear_f16(X, static_cast<const uint16_t*>(W.data), bias, Y, M, N, K, ldx, ldy);
    case Precision::kInt8:
      return linear_int8(X, W, bias, Y, M, N, K, ldx, ldy);
    case Precision::kF32:
      break;
  }
}

void embedding_typed(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H) {
  if (E.type == Precision::kF32) return embedding(ids, static_cast<const float*>(E.data), x, T, H);
  if (E.type == Precision::kInt8 && !E.scale) throw Error("ref embedding: int8 table without its per-row scales");
  for (int64_t t = 0; t < T; ++t) {
    const int64_t row = ids[t];
    for (int64_t c = 0; c < H; ++c) {
      float v = 0.0f;
      if (E.type == Precision::kBF16)
        v = bf16_to_float(static_cast<const uint16_t*>(E.data)[row * H + c]);
      else if (E.type == Precision::kF16)
        v = f16_to_float(static_cast<const uint16_t*>(E.data)[row * H + c]);
      else
        v = static_cast<float>(static_cast<const int8_t*>(E.data)[row * H + c]) * E.scale[row];
      x[t * H + c] = v;
    }
  }
}

void quantize_rows_i8(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* q, float* scale) {
  if (ldx == 0) ldx = K;
  for (int64_t m = 0; m < rows; ++m) {
    const float* r = x + m * ldx;
    float a = 0.0f;
    bool finite = true;
    for (int64_t k = 0; k < K; ++k) {
      if (!std::isfinite(r[k])) finite = false;
      a = std::max(a, std::fabs(r[k]));
    }
    int8_t* qr = q + m * K;
    if (!finite || a == 0.0f) {
      scale[m] = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      for (int64_t k = 0; k < K; ++k) qr[k] = 0;
      continue;
    }
    scale[m] = a / 127.0f;
    const float inv = 127.0f / a;
    if (!std::isfinite(inv)) {  // 127 / a overflows float (a tiny): the formula in double
      for (int64_t k = 0; k < K; ++k)
        qr[k] = static_cast<int8_t>(std::nearbyint(static_cast<double>(r[k]) * 127.0 / a));
      continue;
    }
    for (int64_t k = 0; k < K; ++k) qr[k] = static_cast<int8_t>(std::nearbyint(r[k] * inv));
  }
}

void gemm_i8(const int8_t* A, const int8_t* B, int32_t* C, int64_t M, int64_t N, int64_t K) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      int64_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<int64_t>(A[i * K + k]) * B[j * K + k];
      C[i * N + j] = static_cast<int32_t>(s);
    }
}

// ---- The bf16 activation stream: the fp32 reference op, then each output rounded (RNE). ------

namespace {
void round_all(const std::vector<float>& y, uint16_t* yb) {
  for (size_t i = 0; i < y.size(); ++i) yb[i] = bf16_from_float(y[i]);
}
}  // namespace

void linear_bf16_input(const uint16_t* Xb, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N,
                       int64_t K) {
  if (W.type != Precision::kBF16) throw Error("ref linear_bf16_input: weights must be bf16");
  std::vector<float> x(static_cast<size_t>(std::max<int64_t>(M * K, 0)));
  for (size_t i = 0; i < x.size(); ++i) x[i] = bf16_to_float(Xb[i]);
  linear_bf16(x.data(), static_cast<const uint16_t*>(W.data), bias, Y, M, N, K, K, N, /*round_x=*/false);
}

void layernorm_bf16out(const float* x, const float* gamma, const float* beta, uint16_t* yb, int64_t rows, int64_t C,
                       float eps) {
  std::vector<float> y(static_cast<size_t>(rows * C));
  ref::layernorm(x, gamma, beta, y.data(), rows, C, eps);
  round_all(y, yb);
}

void add_layernorm_bf16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yb, int64_t rows,
                           int64_t C, float eps) {
  std::vector<float> y(static_cast<size_t>(rows * C));
  ref::add_layernorm(x, r, gamma, beta, y.data(), rows, C, eps);
  round_all(y, yb);
}

void glu_bf16out(Act act, const float* u, uint16_t* yb, int64_t T, int64_t I) {
  std::vector<float> y(static_cast<size_t>(T * I));
  ref::glu(act, u, y.data(), T, I);
  round_all(y, yb);
}

void attention_bf16_bf16out(const float* qkv, uint16_t* outb, const int64_t* cu, int64_t num_seqs, int64_t n_heads,
                            int64_t d, int64_t hw, float* workspace, const RopeTable* rope) {
  if (num_seqs < 0 || cu[0] != 0) throw Error("attention_bf16: cu_seqlens[0] must be 0");
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(cu[num_seqs], 0) * n_heads * d));
  ref::attention_bf16(qkv, out.data(), cu, num_seqs, n_heads, d, hw, workspace, rope);
  round_all(out, outb);
}

}  // namespace modernbert::kernels::ref

// ---- The widening activation stream: widen exactly, the fp32 reference op, round each output. ----

namespace modernbert::kernels::ref {

namespace {
std::vector<float> widen16(Precision t, const uint16_t* x, int64_t n) {
  if (t != Precision::kBF16 && t != Precision::kF16) throw Error("ref: a 16-bit activation must be bf16 or f16");
  std::vector<float> y(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (size_t i = 0; i < y.size(); ++i) y[i] = t == Precision::kBF16 ? bf16_to_float(x[i]) : f16_to_float(x[i]);
  return y;
}
void round16(Precision t, const std::vector<float>& y, uint16_t* out) {
  for (size_t i = 0; i < y.size(); ++i) out[i] = t == Precision::kBF16 ? bf16_from_float(y[i]) : f16_from_float(y[i]);
}
}  // namespace

void linear_16in(Precision t, const uint16_t* X, const WeightMatrix& W, const float* bias, float* Y, uint16_t* Y16,
                 int64_t M, int64_t N, int64_t K, float*, int64_t) {
  if ((Y == nullptr) == (Y16 == nullptr)) throw Error("ref linear_16in: give exactly one of Y and Y16");
  const std::vector<float> x = widen16(t, X, M * K);
  if (M <= 0 || N <= 0) return;
  if (Y) return ref::linear(x.data(), W, bias, Y, M, N, K, K, N);
  std::vector<float> y(static_cast<size_t>(M * N));
  ref::linear(x.data(), W, bias, y.data(), M, N, K, K, N);
  round16(t, y, Y16);
}

void linear_glu_16in(Precision t, Act act, const uint16_t* X, const WeightMatrix& W, const float* bias, uint16_t* G,
                     int64_t M, int64_t I, int64_t K, float*, int64_t) {
  if (!G) throw Error("ref linear_glu_16in: no output");
  if (M <= 0 || I <= 0) return;
  std::vector<float> u(static_cast<size_t>(M * 2 * I)), g(static_cast<size_t>(M * I));
  ref::linear_16in(t, X, W, bias, u.data(), nullptr, M, 2 * I, K, nullptr, 0);
  ref::glu(act, u.data(), g.data(), M, I);
  round16(t, g, G);
}

void layernorm_f16out(const float* x, const float* gamma, const float* beta, uint16_t* yh, int64_t rows, int64_t C,
                      float eps) {
  std::vector<float> y(static_cast<size_t>(rows * C));
  ref::layernorm(x, gamma, beta, y.data(), rows, C, eps);
  round16(Precision::kF16, y, yh);
}

void add_layernorm_f16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yh, int64_t rows,
                          int64_t C, float eps) {
  std::vector<float> y(static_cast<size_t>(rows * C));
  ref::add_layernorm(x, r, gamma, beta, y.data(), rows, C, eps);
  round16(Precision::kF16, y, yh);
}

void glu_f16out(Act act, const float* u, uint16_t* yh, int64_t T, int64_t I) {
  std::vector<float> y(static_cast<size_t>(T * I));
  ref::glu(act, u, y.data(), T, I);
  round16(Precision::kF16, y, yh);
}

void attention_16io(Precision t, const uint16_t* qkv, uint16_t* out, const int64_t* cu, int64_t num_seqs,
                    int64_t n_heads, int64_t d, int64_t hw, float* workspace, const RopeTable* rope) {
  if (num_seqs < 0 || cu[0] != 0) throw Error("attention: cu_seqlens[0] must be 0");
  const int64_t T = std::max<int64_t>(cu[num_seqs], 0), H = n_heads * d;
  const std::vector<float> q = widen16(t, qkv, T * 3 * H);
  std::vector<float> o(static_cast<size_t>(T * H));
  ref::attention(q.data(), o.data(), cu, num_seqs, n_heads, d, hw, workspace, rope, nullptr);
  round16(t, o, out);
}

}  // namespace modernbert::kernels::ref

namespace modernbert::kernels::ref {
size_t attention_16io_workspace_floats(int64_t, int64_t, int64_t) { return 0; }  // ref packs nothing
}  // namespace modernbert::kernels::ref
