// Declarations shared by the kernel sources of the dsuite_qgemm extension.
#pragma once
#include <immintrin.h>
#include <torch/extension.h>

// Sum of the 8 floats of an AVX register.
inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 sh = _mm_movehdup_ps(lo);
  __m128 s = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, s);
  return _mm_cvtss_f32(_mm_add_ss(s, sh));
}

torch::Tensor int4_linear(torch::Tensor x, torch::Tensor q, torch::Tensor d, torch::Tensor m, int64_t gs);
torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor s);
void register_decode_step(pybind11::module_& mod);
