// One decode step of every decoder block in C++: the engine's hot loop without Python in between.
//
// For a batch of B sequences that each advance by one token, a block is
//   x = rms_norm(h) ; qkv = x Wqkv^T ; rotary on q, k ; write k, v at each row's position ;
//   a = softmax(q K^T / sqrt(hd)) V over positions 0..pos (grouped-query) ; h += a Wo^T ;
//   x = rms_norm(h) ; [g, u] = x Wgu^T ; h += (silu(g) * u) Wdown^T
// which is exactly what ``core_model.engine.Engine._forward`` does for T = 1, minus the ~30 small PyTorch
// ops (and their dispatcher and Python cost) per block. The projections call the int8 / int4 kernels of
// qgemm.cpp directly, or at::linear for fp32 weights. The KV cache tensors are the engine's own, shared
// with Python: (slots, n_kv, max_len, head_dim) float32 per layer.
#include "qgemm.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

// exp(x) for 8 floats: x = n ln2 + r, |r| <= ln2 / 2, e^r by its degree-6 Taylor polynomial (relative
// error below 2e-7), 2^n built in the exponent bits. Inputs are clamped to [-87, 88].
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// A (possibly fused) projection in the precision the engine's policy chose for it.
struct Projection {
  int kind = 0;  // 0 fp32 (weight), 1 int8 (qweight, scales), 2 int4 (packed, scales, mins)
  std::vector<torch::Tensor> t;
  int64_t group_size = 0;

  Projection() = default;
  Projection(const std::string& precision, std::vector<torch::Tensor> tensors, int64_t gs)
      : t(std::move(tensors)), group_size(gs) {
    if (precision == "fp32") kind = 0;
    else if (precision == "int8") kind = 1;
    else if (precision == "int4") kind = 2;
    else TORCH_CHECK(false, "unknown precision '", precision, "': expected fp32, int8 or int4");
    TORCH_CHECK(t.size() == static_cast<size_t>(kind == 0 ? 1 : kind == 1 ? 2 : 3),
                "precision ", precision, " takes ", kind == 0 ? 1 : kind == 1 ? 2 : 3, " tensors, got ", t.size());
  }

  torch::Tensor operator()(const torch::Tensor& x) const {
    if (kind == 1) return int8_linear(x, t[0], t[1]);
    if (kind == 2) return int4_linear(x, t[0], t[1], t[2], group_size);
    return at::linear(x, t[0]);
  }
};

struct Block {
  torch::Tensor ln1, ln2, k_cache, v_cache;
  Projection qkv, o, gate_up, down;
  int64_t intermediate;
};

// y = x * rsqrt(mean(x^2) + eps) * w for each of the B rows of x (B, D).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, float eps) {
  const int64_t B = x.size(0), D = x.size(1);
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    const float* xr = xp + b * D;
    float* yr = yp + b * D;
    double ss = 0.0;
    for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / D + eps));
    for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * inv * wp[i];
  }
  return y;
}

void add_into(torch::Tensor& h, const torch::Tensor& delta) {
  float* hp = h.data_ptr<float>();
  const float* dp = delta.data_ptr<float>();
  const int64_t n = h.numel();
  for (int64_t i = 0; i < n; ++i) hp[i] += dp[i];
}

// silu(gu[:, :I]) * gu[:, I:] -> (B, I)
torch::Tensor silu_mul(const torch::Tensor& gu, int64_t I) {
  const int64_t B = gu.size(0);
  auto out = torch::empty({B, I}, gu.options());
  const float* g = gu.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < B; ++b) {
    const float* gr = g + b * 2 * I;
    const float* ur = gr + I;
    float* orow = op + b * I;
    int64_t i = 0;
    for (; i + 8 <= I; i += 8) {
      const __m256 gv = _mm256_loadu_ps(gr + i);
      const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_xor_ps(gv, sign))));
      _mm256_storeu_ps(orow + i, _mm256_mul_ps(s, _mm256_loadu_ps(ur + i)));
    }
    for (; i < I; ++i) orow[i] = gr[i] / (1.0f + std::exp(-gr[i])) * ur[i];
  }
  return out;
}

}  // namespace

// The decode step over all blocks; built once per engine, called once per generated token.
class DecodeStep {
 public:
  DecodeStep(torch::Tensor cos, torch::Tensor sin_signed, int64_t n_heads, int64_t n_kv, int64_t head_dim,
             double eps)
      : cos_(std::move(cos)), sin_(std::move(sin_signed)), H_(n_heads), KV_(n_kv), hd_(head_dim),
        eps_(static_cast<float>(eps)) {
    TORCH_CHECK(hd_ % 8 == 0, "the fused decode step needs head_dim to be a multiple of 8, got ", hd_);
    TORCH_CHECK(H_ % KV_ == 0, "n_heads (", H_, ") must be a multiple of n_kv (", KV_, ")");
    TORCH_CHECK(cos_.is_contiguous() && sin_.is_contiguous() && cos_.size(1) == hd_,
                "rotary tables must be contiguous (max_len, head_dim)");
  }

  void add_block(torch::Tensor ln1, torch::Tensor ln2, const std::string& qkv_p, std::vector<torch::Tensor> qkv_t,
                 int64_t qkv_gs, const std::string& o_p, std::vector<torch::Tensor> o_t, int64_t o_gs,
                 const std::string& gu_p, std::vector<torch::Tensor> gu_t, int64_t gu_gs, const std::string& down_p,
                 std::vector<torch::Tensor> down_t, int64_t down_gs, int64_t intermediate, torch::Tensor k_cache,
                 torch::Tensor v_cache) {
    TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous() && k_cache.dim() == 4 &&
                    k_cache.size(1) == KV_ && k_cache.size(3) == hd_,
                "KV cache must be contiguous (slots, n_kv, max_len, head_dim) float32");
    blocks_.push_back(Block{std::move(ln1), std::move(ln2), std::move(k_cache), std::move(v_cache),
                            Projection(qkv_p, std::move(qkv_t), qkv_gs), Projection(o_p, std::move(o_t), o_gs),
                            Projection(gu_p, std::move(gu_t), gu_gs), Projection(down_p, std::move(down_t), down_gs),
                            intermediate});
  }

  // h: (B, D) float32 hidden states of the new tokens (updated in place and returned); row b is slot
  // first + b at position positions[b].
  torch::Tensor forward(torch::Tensor h, std::vector<int64_t> positions, int64_t first) {
    TORCH_CHECK(h.dim() == 2 && h.scalar_type() == torch::kFloat32 && h.is_contiguous(),
                "h must be a contiguous (B, D) float32 tensor");
    const int64_t B = h.size(0);
    TORCH_CHECK(static_cast<int64_t>(positions.size()) == B, "one position per row");
    if (!blocks_.empty()) {  // every layer's cache has the same shape
      const torch::Tensor& cache = blocks_.front().k_cache;
      TORCH_CHECK(first >= 0 && first + B <= cache.size(0), "slots out of range");
      for (int64_t p : positions) TORCH_CHECK(p >= 0 && p < cache.size(2), "position out of range");
    }
    for (const Block& blk : blocks_) {
      auto x = rms_norm(h, blk.ln1, eps_);
      auto qkv = blk.qkv(x);  // (B, (H + 2 KV) hd)
      rotary_and_cache(qkv, blk, positions, first);
      auto att = attention(qkv, blk, positions, first);  // (B, H hd)
      add_into(h, blk.o(att));
      x = rms_norm(h, blk.ln2, eps_);
      add_into(h, blk.down(silu_mul(blk.gate_up(x), blk.intermediate)));
    }
    return h;
  }

 private:
  // Rotary embedding on the q and k heads of each row (in place), then k and v into the cache.
  void rotary_and_cache(torch::Tensor& qkv, const Block& blk, const std::vector<int64_t>& positions,
                        int64_t first) const {
    const int64_t B = qkv.size(0), width = qkv.size(1), half = hd_ / 2, L = blk.k_cache.size(2);
    float* base = qkv.data_ptr<float>();
    float* kc = blk.k_cache.data_ptr<float>();
    float* vc = blk.v_cache.data_ptr<float>();
    std::vector<float> tmp(hd_);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t p = positions[b];
      const float* c = cos_.data_ptr<float>() + p * hd_;
      const float* s = sin_.data_ptr<float>() + p * hd_;
      float* row = base + b * width;
      for (int64_t head = 0; head < H_ + KV_; ++head) {
        float* x = row + head * hd_;
        for (int64_t i = 0; i < hd_; ++i) tmp[i] = x[i];
        for (int64_t i = 0; i < hd_; ++i) x[i] = tmp[i] * c[i] + tmp[(i + half) % hd_] * s[i];
      }
      const int64_t slot = first + b;
      for (int64_t g = 0; g < KV_; ++g) {
        const int64_t off = ((slot * KV_ + g) * L + p) * hd_;
        std::copy(row + (H_ + g) * hd_, row + (H_ + g + 1) * hd_, kc + off);
        std::copy(row + (H_ + KV_ + g) * hd_, row + (H_ + KV_ + g + 1) * hd_, vc + off);
      }
    }
  }

  // softmax(q k^T / sqrt(hd)) v over cached positions 0..p for every (row, head), in parallel.
  torch::Tensor attention(const torch::Tensor& qkv, const Block& blk, const std::vector<int64_t>& positions,
                          int64_t first) const {
    const int64_t B = qkv.size(0), width = qkv.size(1), L = blk.k_cache.size(2), group = H_ / KV_;
    auto out = torch::empty({B, H_ * hd_}, qkv.options());
    const float* qp = qkv.data_ptr<float>();
    const float* kc = blk.k_cache.data_ptr<float>();
    const float* vc = blk.v_cache.data_ptr<float>();
    float* op = out.data_ptr<float>();
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd_));
    const int64_t hd = hd_, H = H_, KV = KV_;
    at::parallel_for(0, B * H, 1, [&](int64_t t0, int64_t t1) {
      std::vector<float> scores;
      std::vector<__m256> acc(hd / 8);
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t b = task / H, head = task % H, g = head / group, n = positions[b] + 1;
        const float* q = qp + b * width + head * hd;
        const float* keys = kc + ((first + b) * KV + g) * L * hd;
        const float* vals = vc + ((first + b) * KV + g) * L * hd;
        scores.resize(n + 8);
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          const float* k = keys + j * hd;
          __m256 s = _mm256_mul_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(k));
          for (int64_t d = 8; d < hd; d += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), s);
          scores[j] = hsum(s) * scale;
          mx = std::max(mx, scores[j]);
        }
        const __m256 mv = _mm256_set1_ps(mx);
        __m256 sv = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
          const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores.data() + j), mv));
          _mm256_storeu_ps(scores.data() + j, e);
          sv = _mm256_add_ps(sv, e);
        }
        float sum = hsum(sv);
        for (; j < n; ++j) {
          scores[j] = std::exp(scores[j] - mx);
          sum += scores[j];
        }
        for (auto& a : acc) a = _mm256_setzero_ps();
        for (j = 0; j < n; ++j) {
          const __m256 w = _mm256_set1_ps(scores[j]);
          const float* v = vals + j * hd;
          for (int64_t d = 0; d < hd / 8; ++d) acc[d] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + d * 8), acc[d]);
        }
        const __m256 inv = _mm256_set1_ps(1.0f / sum);
        float* o = op + b * H * hd + head * hd;
        for (int64_t d = 0; d < hd / 8; ++d) _mm256_storeu_ps(o + d * 8, _mm256_mul_ps(acc[d], inv));
      }
    });
    return out;
  }

  torch::Tensor cos_, sin_;
  int64_t H_, KV_, hd_;
  float eps_;
  std::vector<Block> blocks_;
};

void register_decode_step(pybind11::module_& mod) {
  pybind11::class_<DecodeStep>(mod, "DecodeStep")
      .def(pybind11::init<torch::Tensor, torch::Tensor, int64_t, int64_t, int64_t, double>())
      .def("add_block", &DecodeStep::add_block)
      .def("forward", &DecodeStep::forward);
}
