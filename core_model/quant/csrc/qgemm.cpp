// Weight-only quantized matmul kernels for CPUs with AVX2 + FMA + F16C (the llama.cpp approach).
//
//   y = x @ W^T,  x: (M, K) fp32,  W: (N, K) stored quantized, y: (M, N) fp32.
//
// The activations are quantized on the fly to int8 in blocks of 32 (scale dx, plus the block's float
// sum sx for the int4 minimum term); the dot products run on 8-bit integer instructions
// (vpmaddubsw + vpmaddwd), so one 32-value block costs about ten instructions and the kernels run
// near memory bandwidth when decoding.
//
// int4 grouped (asymmetric, like GGUF Q4_1): group g of row n has fp16 scale d and minimum m,
//   W[n, k] = d * q + m,  q in [0, 15]. Packing: inside a block of 32 values, byte j holds value j in
//   its low nibble and value j + 16 in its high nibble, so one 16-byte load covers a whole block.
//   Group size is a multiple of 32.
// int8 per output channel (symmetric): W[n, k] = s[n] * q,  q in [-127, 127].
#include "qgemm.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <vector>

namespace {

// x (M, K) -> int8 blocks of 32 (q), per-block scale (d), float sum (s) and sum of the int8 values (is).
void quantize_rows(const float* x, int64_t M, int64_t K, int8_t* q, float* d, float* s, float* is) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const int64_t nb = K / 32;
  for (int64_t r = 0; r < M; ++r) {
    for (int64_t i = 0; i < nb; ++i) {
      const float* xb = x + r * K + i * 32;
      __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
      __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
      __m256 amax = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                  _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
      __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
      const float maxabs = _mm_cvtss_f32(m4);
      const float dx = maxabs / 127.0f;
      const __m256 id = _mm256_set1_ps(maxabs != 0.0f ? 127.0f / maxabs : 0.0f);
      d[r * nb + i] = dx;
      s[r * nb + i] = hsum(_mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)));
      const __m256 r0 = _mm256_round_ps(_mm256_mul_ps(v0, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256 r1 = _mm256_round_ps(_mm256_mul_ps(v1, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256 r2 = _mm256_round_ps(_mm256_mul_ps(v2, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256 r3 = _mm256_round_ps(_mm256_mul_ps(v3, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      is[r * nb + i] = hsum(_mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(r2, r3)));
      __m256i i0 = _mm256_cvtps_epi32(r0);
      __m256i i1 = _mm256_cvtps_epi32(r1);
      __m256i i2 = _mm256_cvtps_epi32(r2);
      __m256i i3 = _mm256_cvtps_epi32(r3);
      i0 = _mm256_packs_epi32(i0, i1);
      i2 = _mm256_packs_epi32(i2, i3);
      i0 = _mm256_packs_epi16(i0, i2);
      i0 = _mm256_permutevar8x32_epi32(i0, perm);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + r * K + i * 32), i0);
    }
  }
}

struct QuantizedRows {
  std::vector<int8_t> q;
  std::vector<float> d, s, is;
  int64_t K, nb;
  QuantizedRows(const float* x, int64_t M, int64_t K_)
      : q(M * K_), d(M * (K_ / 32)), s(M * (K_ / 32)), is(M * (K_ / 32)), K(K_), nb(K_ / 32) {
    quantize_rows(x, M, K, q.data(), d.data(), s.data(), is.data());
  }
};

// Per-block float scales and minimums of one int4 weight row (groups of gs values -> blocks of 32).
inline void expand_row_scales(const at::Half* wd, const at::Half* wm, int64_t gs, int64_t nb, float* wdf,
                              float* wmf) {
  if (gs == 32) {
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
      _mm256_storeu_ps(wdf + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wd + i))));
      _mm256_storeu_ps(wmf + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wm + i))));
    }
    for (; i < nb; ++i) { wdf[i] = _cvtsh_ss(wd[i].x); wmf[i] = _cvtsh_ss(wm[i].x); }
    return;
  }
  const int64_t sub = gs / 32;
  for (int64_t g = 0; g < nb / sub; ++g) {
    const float dv = _cvtsh_ss(wd[g].x), mv = _cvtsh_ss(wm[g].x);
    for (int64_t t = 0; t < sub; ++t) { wdf[g * sub + t] = dv; wmf[g * sub + t] = mv; }
  }
}

// The activations of QuantizedRows rearranged for the int4 kernel, two blocks at a time: for blocks
// A = 2j and B = 2j + 1, lo[j] = A[0:16] B[0:16] and hi[j] = A[16:32] B[16:32] (an odd last block is paired
// with zeros). That is the nibble order of 32 packed weight bytes (blocks A and B: low nibbles hold values
// 0..15, high nibbles 16..31), so one 32-byte weight load feeds two blocks with no shuffles. Also the
// activation part of the centring correction per block, c = 8 (sx - dx sum(qx)).
struct PairedRows {
  std::vector<int8_t> q;        // (M, np, 64): lo then hi
  std::vector<float> d, s, c;   // (M, nb8): scale, float sum, correction; zero past nb
  int64_t nb, np, nb8;
  PairedRows(const QuantizedRows& qx, int64_t M)
      : q(M * ((qx.nb + 1) / 2) * 64, 0), d(M * ((qx.nb + 7) / 8 * 8), 0.0f), s(d.size(), 0.0f),
        c(d.size(), 0.0f), nb(qx.nb), np((qx.nb + 1) / 2), nb8((qx.nb + 7) / 8 * 8) {
    for (int64_t r = 0; r < M; ++r) {
      for (int64_t i = 0; i < nb; ++i) {
        const int8_t* src = qx.q.data() + r * qx.K + i * 32;
        int8_t* dst = q.data() + (r * np + i / 2) * 64 + (i % 2) * 16;
        std::copy(src, src + 16, dst);
        std::copy(src + 16, src + 32, dst + 32);
        const int64_t k = r * nb + i, kp = r * nb8 + i;
        d[kp] = qx.d[k];
        s[kp] = qx.s[k];
        c[kp] = 8.0f * (qx.s[k] - qx.d[k] * qx.is[k]);
      }
    }
  }
};

// One int4 weight row against MB quantized activation rows, two blocks per step. comb holds, per row
// and block pair, the 8 lane scales (weight scale * activation scale: block A's in lanes 0-3, B's in
// 4-7), matching where vpmaddwd leaves each block's partial sums. The weights are centred (q - 8) so
// activation rounding errors do not add up over a biased sum:
//   y = sum_i d_i dx_i sum(q qx) + d_i c_i + m_i sx_i,   c_i = 8 (sx_i - dx_i sum(qx)_i).
template <int MB>
inline void int4_row(const PairedRows& px, int64_t b0, const uint8_t* w,
                     const float* wdf, const float* wmf, float* comb, float* y, int64_t ldy) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i lanes01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m256i lanes23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  const __m256i lanes45 = _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5);
  const __m256i lanes67 = _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7);
  const int64_t nb = px.nb, np = px.np, nb8 = px.nb8;
  float corr[MB];
  for (int b = 0; b < MB; ++b) {  // wdf, wmf and the activation arrays are zero-padded to nb8
    const float* dx = px.d.data() + (b0 + b) * nb8;
    const float* sx = px.s.data() + (b0 + b) * nb8;
    const float* cx = px.c.data() + (b0 + b) * nb8;
    float* cb = comb + b * (nb8 / 2) * 8;
    __m256 cv = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb8; i += 8) {
      const __m256 d8 = _mm256_loadu_ps(wdf + i);
      const __m256 c8 = _mm256_mul_ps(d8, _mm256_loadu_ps(dx + i));
      cv = _mm256_fmadd_ps(d8, _mm256_loadu_ps(cx + i), cv);
      cv = _mm256_fmadd_ps(_mm256_loadu_ps(wmf + i), _mm256_loadu_ps(sx + i), cv);
      float* out = cb + (i / 2) * 8;
      _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(c8, lanes01));
      _mm256_storeu_ps(out + 8, _mm256_permutevar8x32_ps(c8, lanes23));
      _mm256_storeu_ps(out + 16, _mm256_permutevar8x32_ps(c8, lanes45));
      _mm256_storeu_ps(out + 24, _mm256_permutevar8x32_ps(c8, lanes67));
    }
    corr[b] = hsum(cv);
  }
  __m256 acc[MB];
  for (int b = 0; b < MB; ++b) acc[b] = _mm256_setzero_ps();
  const int8_t* xq = px.q.data() + b0 * np * 64;
  for (int64_t j = 0; j < np; ++j) {
    const __m256i raw = 2 * j + 1 < nb
        ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * 32))
        : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j * 32)));
    const __m256i wl = _mm256_and_si256(raw, low);
    const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
    for (int b = 0; b < MB; ++b) {
      const int8_t* xp = xq + (b * np + j) * 64;
      const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp));
      const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32));
      const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(wl, xl), _mm256_maddubs_epi16(wh, xh));
      const __m256i p = _mm256_madd_epi16(s16, ones);
      acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_loadu_ps(comb + (b * (nb8 / 2) + j) * 8), acc[b]);
    }
  }
  for (int b = 0; b < MB; ++b) y[b * ldy] = hsum(acc[b]) + corr[b];
}

template <int MB>
inline void int8_row(const QuantizedRows& qx, int64_t b0, const int8_t* w, float scale, float* y,
                     int64_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MB];
  for (int b = 0; b < MB; ++b) acc[b] = _mm256_setzero_ps();
  for (int64_t i = 0; i < qx.nb; ++i) {
    const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * 32));
    const __m256i aw = _mm256_sign_epi8(wb, wb);
    for (int b = 0; b < MB; ++b) {
      const int64_t row = (b0 + b) * qx.nb + i;
      const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx.q.data() + row * 32));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xb, wb)), ones);
      acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(qx.d[row]), acc[b]);
    }
  }
  for (int b = 0; b < MB; ++b) y[b * ldy] = hsum(acc[b]) * scale;
}

constexpr int64_t kChunk = 4;

#define DISPATCH_MB(mb, CALL) \
  switch (mb) {               \
    case 1: CALL(1); break;   \
    case 2: CALL(2); break;   \
    case 3: CALL(3); break;   \
    default: CALL(4); break;  \
  }

void check_x(const torch::Tensor& x, int64_t K) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32 && x.is_contiguous(),
              "x must be a contiguous 2-D float32 tensor");
  TORCH_CHECK(x.size(1) == K, "x has ", x.size(1), " columns, the weight expects ", K);
  TORCH_CHECK(K % 32 == 0, "K must be a multiple of 32, got ", K);
}

int64_t grain(int64_t M) { return M <= 4 ? 64 : 8; }

}  // namespace

torch::Tensor int4_linear(torch::Tensor x, torch::Tensor q, torch::Tensor d, torch::Tensor m, int64_t gs) {
  const int64_t N = q.size(0), K = q.size(1) * 2, M = x.size(0);
  check_x(x, K);
  TORCH_CHECK(gs % 32 == 0 && K % gs == 0, "group size must be a multiple of 32 dividing K");
  TORCH_CHECK(q.scalar_type() == torch::kUInt8 && q.is_contiguous(), "packed weight must be contiguous uint8");
  TORCH_CHECK(d.scalar_type() == torch::kHalf && m.scalar_type() == torch::kHalf && d.is_contiguous() &&
                  m.is_contiguous(), "scales and minimums must be contiguous float16");
  auto y = torch::empty({M, N}, x.options());
  const QuantizedRows qx(x.data_ptr<float>(), M, K);
  const PairedRows px(qx, M);
  float* yp = y.data_ptr<float>();
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const at::Half* dp = d.data_ptr<at::Half>();
  const at::Half* mp = m.data_ptr<at::Half>();
  const int64_t ng = K / gs;
  const int64_t nb = K / 32;
  at::parallel_for(0, N, grain(M), [&](int64_t n0, int64_t n1) {
    std::vector<float> wdf(px.nb8, 0.0f), wmf(px.nb8, 0.0f), comb(kChunk * (px.nb8 / 2) * 8);
    for (int64_t n = n0; n < n1; ++n) {
      expand_row_scales(dp + n * ng, mp + n * ng, gs, nb, wdf.data(), wmf.data());
      for (int64_t b0 = 0; b0 < M; b0 += kChunk) {
#define CALL4(MB) int4_row<MB>(px, b0, qp + n * (K / 2), wdf.data(), wmf.data(), comb.data(), yp + b0 * N + n, N)
        DISPATCH_MB(std::min(kChunk, M - b0), CALL4)
#undef CALL4
      }
    }
  });
  return y;
}

torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor s) {
  const int64_t N = q.size(0), K = q.size(1), M = x.size(0);
  check_x(x, K);
  TORCH_CHECK(q.scalar_type() == torch::kInt8 && q.is_contiguous(), "weight must be contiguous int8");
  TORCH_CHECK(s.scalar_type() == torch::kFloat32 && s.is_contiguous(), "scales must be contiguous float32");
  auto y = torch::empty({M, N}, x.options());
  const QuantizedRows qx(x.data_ptr<float>(), M, K);
  float* yp = y.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  at::parallel_for(0, N, grain(M), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t b0 = 0; b0 < M; b0 += kChunk) {
#define CALL8(MB) int8_row<MB>(qx, b0, qp + n * K, sp[n], yp + b0 * N + n, N)
        DISPATCH_MB(std::min(kChunk, M - b0), CALL8)
#undef CALL8
      }
    }
  });
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.def("int4_linear", &int4_linear, "y = x @ dequant_int4(W)^T (grouped, asymmetric; int8 activations)");
  mod.def("int8_linear", &int8_linear, "y = x @ dequant_int8(W)^T (per output channel; int8 activations)");
  register_decode_step(mod);
}
