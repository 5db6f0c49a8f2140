#include "elementwise.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- portable ----------------------------------------------------------------------------

static inline float exp_scalar(float x) {
    if (x < -87.33654f) x = -87.33654f;
    if (x > 88.72283f) x = 88.72283f;
    float shifted = x * 1.44269504f + 12582912.0f;
    float n = shifted - 12582912.0f;
    x = x - n * 0.693359375f - n * -2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * (x * x) + x + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, 4);
    int32_t exponent = (bits - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &exponent, 4);
    return y * scale;
}

static float max_portable(const float *x, int64_t n) {
    float best = -INFINITY;
    for (int64_t i = 0; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

static float exp_shifted_portable(float *x, int64_t n, float shift) {
    float total = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = exp_scalar(x[i] - shift);
        total += x[i];
    }
    return total;
}

static void scale_portable(float *x, int64_t n, float factor) {
    for (int64_t i = 0; i < n; i++) x[i] *= factor;
}

static void rms_norm_portable(const float *x, const float *w, float *out, int64_t n, float eps) {
    float squares = 0;
    for (int64_t i = 0; i < n; i++) squares += x[i] * x[i];
    float inverse = 1.0f / sqrtf(squares / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * inverse * w[i];
}

static void silu_gate_portable(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + exp_scalar(-gate[i])) * up[i];
}

static void rotary_portable(float *x, int64_t heads, int64_t half, const float *c, const float *s) {
    for (int64_t h = 0; h < heads; h++) {
        float *a = x + h * 2 * half, *b = a + half;
        for (int64_t i = 0; i < half; i++) {
            float first = a[i], second = b[i];
            a[i] = first * c[i] - second * s[i];
            b[i] = second * c[i] + first * s[i];
        }
    }
}

// ---- AVX2 + FMA --------------------------------------------------------------------------

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.72283f));
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), _mm256_set1_ps(12582912.0f));
    __m256 n = _mm256_sub_ps(shifted, _mm256_set1_ps(12582912.0f));
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, _mm256_mul_ps(x, x), x), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4B400000)), _mm256_set1_epi32(127));
    return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(bits, 23)));
}

AVX2 static inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

AVX2 static float max_avx2(const float *x, int64_t n) {
    int64_t i = 0;
    float best = -INFINITY;
    if (n >= 8) {
        __m256 acc = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + i));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        best = _mm_cvtss_f32(m);
    }
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

AVX2 static float exp_shifted_avx2(float *x, int64_t n, float shift) {
    __m256 s = _mm256_set1_ps(shift), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float total = sum8(acc);
    if (i < n) {
        // The tail through the same polynomial, padded with -infinity (exp gives 0).
        float tail[8];
        for (int j = 0; j < 8; j++) tail[j] = i + j < n ? x[i + j] : -INFINITY;
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(tail), s));
        _mm256_storeu_ps(tail, e);
        for (int j = 0; i + j < n; j++) {
            x[i + j] = tail[j];
            total += tail[j];
        }
    }
    return total;
}

AVX2 static void scale_avx2(float *x, int64_t n, float factor) {
    __m256 f = _mm256_set1_ps(factor);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), f));
    for (; i < n; i++) x[i] *= factor;
}

AVX2 static void rms_norm_avx2(const float *x, const float *w, float *out, int64_t n, float eps) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float squares = sum8(acc);
    for (; i < n; i++) squares += x[i] * x[i];
    float inverse = 1.0f / sqrtf(squares / (float)n + eps);
    __m256 inv = _mm256_set1_ps(inverse);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = x[i] * inverse * w[i];
}

AVX2 static void silu_gate_avx2(float *gate, const float *up, int64_t n) {
    __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + exp_scalar(-gate[i])) * up[i];
}

AVX2 static void rotary_avx2(float *x, int64_t heads, int64_t half, const float *c, const float *s) {
    for (int64_t h = 0; h < heads; h++) {
        float *a = x + h * 2 * half, *b = a + half;
        int64_t i = 0;
        for (; i + 8 <= half; i += 8) {
            __m256 first = _mm256_loadu_ps(a + i), second = _mm256_loadu_ps(b + i);
            __m256 cv = _mm256_loadu_ps(c + i), sv = _mm256_loadu_ps(s + i);
            _mm256_storeu_ps(a + i, _mm256_fmsub_ps(first, cv, _mm256_mul_ps(second, sv)));
            _mm256_storeu_ps(b + i, _mm256_fmadd_ps(second, cv, _mm256_mul_ps(first, sv)));
        }
        for (; i < half; i++) {
            float first = a[i], second = b[i];
            a[i] = first * c[i] - second * s[i];
            b[i] = second * c[i] + first * s[i];
        }
    }
}

// ---- AVX-512 -----------------------------------------------------------------------------

#define AVX512 __attribute__((target("avx512f")))

AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.72283f));
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), _mm512_set1_ps(12582912.0f));
    __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(12582912.0f));
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, _mm512_mul_ps(x, x), x), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127));
    return _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(bits, 23)));
}

AVX512 static float max_avx512(const float *x, int64_t n) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_max_ps(acc, _mm512_loadu_ps(x + i));
    if (i < n) acc = _mm512_max_ps(acc, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), (__mmask16)((1u << (n - i)) - 1), x + i));
    return _mm512_reduce_max_ps(acc);
}

AVX512 static float exp_shifted_avx512(float *x, int64_t n, float shift) {
    __m512 s = _mm512_set1_ps(shift), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i), s));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(acc);
}

AVX512 static void scale_avx512(float *x, int64_t n, float factor) {
    __m512 f = _mm512_set1_ps(factor);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), f));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), f));
    }
}

AVX512 static void rms_norm_avx512(const float *x, const float *w, float *out, int64_t n, float eps) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    if (i < n) {
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    float inverse = 1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)n + eps);
    __m512 inv = _mm512_set1_ps(inverse);
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv), _mm512_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = x[i] * inverse * w[i];
}

AVX512 static void silu_gate_avx512(float *gate, const float *up, int64_t n) {
    __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(zero, g))));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + exp_scalar(-gate[i])) * up[i];
}

AVX512 static void rotary_avx512(float *x, int64_t heads, int64_t half, const float *c, const float *s) {
    for (int64_t h = 0; h < heads; h++) {
        float *a = x + h * 2 * half, *b = a + half;
        for (int64_t i = 0; i < half; i += 16) {
            __mmask16 m = half - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (half - i)) - 1);
            __m512 first = _mm512_maskz_loadu_ps(m, a + i), second = _mm512_maskz_loadu_ps(m, b + i);
            __m512 cv = _mm512_maskz_loadu_ps(m, c + i), sv = _mm512_maskz_loadu_ps(m, s + i);
            _mm512_mask_storeu_ps(a + i, m, _mm512_fmsub_ps(first, cv, _mm512_mul_ps(second, sv)));
            _mm512_mask_storeu_ps(b + i, m, _mm512_fmadd_ps(second, cv, _mm512_mul_ps(first, sv)));
        }
    }
}

// ---- dispatch ----------------------------------------------------------------------------

static const l2pd_elementwise builds[] = {
    {"avx512", max_avx512, exp_shifted_avx512, scale_avx512, rms_norm_avx512, silu_gate_avx512, rotary_avx512},
    {"avx2", max_avx2, exp_shifted_avx2, scale_avx2, rms_norm_avx2, silu_gate_avx2, rotary_avx2},
    {"portable", max_portable, exp_shifted_portable, scale_portable, rms_norm_portable, silu_gate_portable,
     rotary_portable},
};

static int supported(int index) {
    __builtin_cpu_init();
    switch (index) {
    case 0: return __builtin_cpu_supports("avx512f");
    case 1: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return 1;
    }
}

// The build in use; chosen on first use (a data race on first use only picks the same value).
static const l2pd_elementwise *volatile active = NULL;

static const l2pd_elementwise *current(void) {
    const l2pd_elementwise *k = active;
    if (k != NULL) return k;
    const char *asked = getenv("L2PD_KERNELS");
    int first = 0;
    if (asked != NULL)
        for (int i = 0; i < 3; i++)
            if (strcmp(asked, builds[i].name) == 0) first = i;
    for (int i = first; i < 3; i++)
        if (supported(i)) {
            active = &builds[i];
            return active;
        }
    active = &builds[2];
    return active;
}

const l2pd_elementwise *l2pd_elementwise_named(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, builds[i].name) == 0) return supported(i) ? &builds[i] : NULL;
    return NULL;
}

const char *l2pd_elementwise_kernels(void) { return current()->name; }
float l2pd_max(const float *x, int64_t n) { return current()->max(x, n); }
float l2pd_exp_shifted(float *x, int64_t n, float shift) { return current()->exp_shifted(x, n, shift); }
void l2pd_scale(float *x, int64_t n, float factor) { current()->scale(x, n, factor); }
void l2pd_rms_norm(const float *x, const float *w, float *out, int64_t n, float eps) { current()->rms_norm(x, w, out, n, eps); }
void l2pd_silu_gate(float *gate, const float *up, int64_t n) { current()->silu_gate(gate, up, n); }
void l2pd_rotary(float *x, int64_t heads, int64_t half, const float *c, const float *s) {
    current()->rotary(x, heads, half, c, s);
}
