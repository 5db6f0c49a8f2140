#include "attention_bf16.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise.h"

// Layouts in the scratch (d = head_dim, P = d / 2 pairs, K16 = key rows rounded up to 16,
// K2 = key rows rounded up to 2, T = query rows per tile):
//   keys    [K16 / 16][P][16 keys][2]   a vector holds one pair of 16 keys
//   values  [K2 / 2][d / 16][16][2]     a vector holds 16 columns of two consecutive keys
//   queries [T][d]                      scaled, BF16
//   scores  [T][K16] F32, then weights [T][K2] BF16, and one 1/sum per row.

#define KERNEL __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

static int64_t tile_rows(int64_t query_rows, int64_t key_rows) {
    int64_t rows = 131072 / round_up(key_rows, 16);  // 512 KiB of scores at most
    if (rows < 4) rows = 4;
    return rows < query_rows ? rows : query_rows;
}

int l2pd_attention_bf16_available(void) {
    static int known = -1;
    if (known < 0) {
        const char *asked = getenv("L2PD_KERNELS");
        int allowed = !(asked && (strcmp(asked, "portable") == 0 || strcmp(asked, "avx2") == 0));
        known = allowed && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
    }
    return known;
}

size_t l2pd_attention_bf16_scratch_bytes(int64_t query_rows, int64_t key_rows, int64_t head_dim) {
    if (head_dim <= 0 || head_dim % 16 != 0 || query_rows <= 0 || key_rows <= 0) return 0;
    int64_t t = tile_rows(query_rows, key_rows), k16 = round_up(key_rows, 16), k2 = round_up(key_rows, 2);
    int64_t bytes = round_up(k16 * head_dim * 2, 64) + round_up(k2 * head_dim * 2, 64) +
                    round_up(t * head_dim * 2, 64) + round_up(t * k16 * 4, 64) + round_up(t * k2 * 2, 64) +
                    round_up(t * 4, 64);
    return (size_t)bytes;
}

// scores[r][16 b + i] = q_r . k_(16 b + i) for R rows and NB blocks of 16 keys.
KERNEL INLINE void scores_tile(const uint32_t *q, int64_t q_pairs, const __m512bh *keys, int64_t pairs, float *s,
                               int64_t s_stride, const int R, const int NB) {
    __m512 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; p++) {
        __m512bh kv[4];
        for (int b = 0; b < NB; b++) kv[b] = (__m512bh)_mm512_loadu_si512(keys + b * pairs + p);
        for (int r = 0; r < R; r++) {
            __m512bh qv = (__m512bh)_mm512_set1_epi32((int)q[r * q_pairs + p]);
            for (int b = 0; b < NB; b++) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], qv, kv[b]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) _mm512_storeu_ps(s + r * s_stride + 16 * b, acc[r][b]);
}

// out[r][16 c + i] = inverse[r] * sum_j w[r][j] v[j][16 c + i] for R rows and C column blocks.
KERNEL INLINE void output_tile(const uint32_t *w, int64_t w_pairs, const __m512bh *values, int64_t chunks,
                               int64_t key_pairs, const float *inverse, float *out, int64_t out_stride, const int R,
                               const int C) {
    __m512 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < key_pairs; j++) {
        __m512bh vv[4];
        for (int c = 0; c < C; c++) vv[c] = (__m512bh)_mm512_loadu_si512(values + j * chunks + c);
        for (int r = 0; r < R; r++) {
            __m512bh wv = (__m512bh)_mm512_set1_epi32((int)w[r * w_pairs + j]);
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], wv, vv[c]);
        }
    }
    for (int r = 0; r < R; r++) {
        __m512 factor = _mm512_set1_ps(inverse[r]);
        for (int c = 0; c < C; c++) _mm512_storeu_ps(out + r * out_stride + 16 * c, _mm512_mul_ps(acc[r][c], factor));
    }
}

// The tiles above with R and NB (or C) known at compile time, for every size from 1 to 4.
#define CASES(F, ...)                                                                           \
    switch (a * 4 + b) {                                                                        \
    case 5: F(__VA_ARGS__, 1, 1); break;  case 6: F(__VA_ARGS__, 1, 2); break;                 \
    case 7: F(__VA_ARGS__, 1, 3); break;  case 8: F(__VA_ARGS__, 1, 4); break;                 \
    case 9: F(__VA_ARGS__, 2, 1); break;  case 10: F(__VA_ARGS__, 2, 2); break;                \
    case 11: F(__VA_ARGS__, 2, 3); break; case 12: F(__VA_ARGS__, 2, 4); break;                \
    case 13: F(__VA_ARGS__, 3, 1); break; case 14: F(__VA_ARGS__, 3, 2); break;                \
    case 15: F(__VA_ARGS__, 3, 3); break; case 16: F(__VA_ARGS__, 3, 4); break;                \
    case 17: F(__VA_ARGS__, 4, 1); break; case 18: F(__VA_ARGS__, 4, 2); break;                \
    case 19: F(__VA_ARGS__, 4, 3); break; default: F(__VA_ARGS__, 4, 4); break;                \
    }

KERNEL static void scores_any(const uint32_t *q, int64_t q_pairs, const __m512bh *keys, int64_t pairs, float *s,
                              int64_t s_stride, int a, int b) {
    CASES(scores_tile, q, q_pairs, keys, pairs, s, s_stride)
}

KERNEL static void output_any(const uint32_t *w, int64_t w_pairs, const __m512bh *values, int64_t chunks,
                              int64_t key_pairs, const float *inverse, float *out, int64_t out_stride, int a, int b) {
    CASES(output_tile, w, w_pairs, values, chunks, key_pairs, inverse, out, out_stride)
}

// n floats to BF16, rounding to nearest even (the instruction's rounding).
KERNEL static void row_to_bf16(const float *x, int64_t n, uint16_t *out) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh both = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512(out + i, (__m512i)both);
    }
    if (i < n) {
        int64_t left = n - i;
        __mmask16 low = (__mmask16)((left >= 16) ? 0xFFFF : ((1u << left) - 1));
        __mmask16 high = (__mmask16)((left <= 16) ? 0 : ((1u << (left - 16)) - 1));
        __m512bh both = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, x + i + 16), _mm512_maskz_loadu_ps(low, x + i));
        __mmask32 mask = (__mmask32)((1ull << left) - 1);
        _mm512_mask_storeu_epi16(out + i, mask, (__m512i)both);
    }
}

// Keys as [K16 / 16][P][16][2]: the pairs of each key row, 16 keys side by side; padded keys 0.
KERNEL static void pack_keys(const float *k, int64_t kv_stride, int64_t key_rows, int64_t d, uint16_t *keys) {
    const int64_t pairs = d / 2, k16 = round_up(key_rows, 16);
    uint32_t *out = (uint32_t *)keys;
    uint16_t row_bf16[d];
    for (int64_t j0 = 0; j0 < k16; j0 += 16) {
        uint32_t *block = out + j0 * pairs;
        for (int64_t i = 0; i < 16; i++) {
            const int64_t j = j0 + i;
            if (j >= key_rows) {
                for (int64_t p = 0; p < pairs; p++) block[p * 16 + i] = 0;
                continue;
            }
            row_to_bf16(k + j * kv_stride, d, row_bf16);
            const uint32_t *pairs_of_row = (const uint32_t *)row_bf16;
            for (int64_t p = 0; p < pairs; p++) block[p * 16 + i] = pairs_of_row[p];
        }
    }
}

// Values as [K2 / 2][d / 16][16][2]: 16 columns of two consecutive keys, interleaved.
KERNEL static void pack_values(const float *v, int64_t kv_stride, int64_t key_rows, int64_t d, uint16_t *values) {
    const int64_t k2 = round_up(key_rows, 2), chunks = d / 16;
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t j = 0; j < k2; j += 2) {
        const float *first = v + j * kv_stride;
        const float *second = v + (j + 1) * kv_stride;
        const int has_second = j + 1 < key_rows;
        for (int64_t c = 0; c < chunks; c++) {
            __m512 b = has_second ? _mm512_loadu_ps(second + 16 * c) : _mm512_setzero_ps();
            __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, _mm512_loadu_ps(first + 16 * c));
            _mm512_storeu_si512(values + ((j / 2) * chunks + c) * 32, _mm512_permutexvar_epi16(interleave, both));
        }
    }
}

KERNEL void l2pd_attention_bf16(const float *q, int64_t q_stride, int64_t query_rows, const float *k, const float *v,
                                int64_t kv_stride, int64_t key_rows, int64_t head_dim, float scale, float *out,
                                int64_t out_stride, void *scratch) {
    const int64_t d = head_dim, pairs = d / 2, chunks = d / 16;
    const int64_t k16 = round_up(key_rows, 16), k2 = round_up(key_rows, 2), t = tile_rows(query_rows, key_rows);
    char *at = (char *)scratch;
    uint16_t *keys = (uint16_t *)at;
    at += round_up(k16 * d * 2, 64);
    uint16_t *values = (uint16_t *)at;
    at += round_up(k2 * d * 2, 64);
    uint16_t *queries = (uint16_t *)at;
    at += round_up(t * d * 2, 64);
    float *scores = (float *)at;
    at += round_up(t * k16 * 4, 64);
    uint16_t *weights = (uint16_t *)at;
    at += round_up(t * k2 * 2, 64);
    float *inverse = (float *)at;

    pack_keys(k, kv_stride, key_rows, d, keys);
    pack_values(v, kv_stride, key_rows, d, values);

    const __m512bh *key_blocks = (const __m512bh *)keys;
    const __m512bh *value_pairs = (const __m512bh *)values;
    for (int64_t row = 0; row < query_rows; row += t) {
        const int64_t rows = query_rows - row < t ? query_rows - row : t;
        for (int64_t r = 0; r < rows; r++) {
            const float *x = q + (row + r) * q_stride;
            const __m512 factor = _mm512_set1_ps(scale);
            for (int64_t i = 0; i < d; i += 32) {
                __m512 high = i + 32 <= d ? _mm512_loadu_ps(x + i + 16) : _mm512_setzero_ps();  // d is a multiple of 16
                __m512bh both = _mm512_cvtne2ps_pbh(_mm512_mul_ps(high, factor), _mm512_mul_ps(_mm512_loadu_ps(x + i), factor));
                if (i + 32 <= d) _mm512_storeu_si512(queries + r * d + i, (__m512i)both);
                else _mm256_storeu_si256((__m256i *)(queries + r * d + i), _mm512_castsi512_si256((__m512i)both));
            }
        }
        const uint32_t *qp = (const uint32_t *)queries;
        for (int64_t r = 0; r < rows; r += 4) {
            const int64_t rr = rows - r < 4 ? rows - r : 4;
            for (int64_t b = 0; b < k16 / 16; b += 4) {
                const int64_t bb = k16 / 16 - b < 4 ? k16 / 16 - b : 4;
                const uint32_t *qr = qp + r * pairs;
                const __m512bh *kb = key_blocks + b * pairs;
                float *s = scores + r * k16 + 16 * b;
                scores_any(qr, pairs, kb, pairs, s, k16, (int)rr, (int)bb);
            }
        }
        for (int64_t r = 0; r < rows; r++) {
            float *s = scores + r * k16;
            float top = l2pd_max(s, key_rows);
            inverse[r] = 1.0f / l2pd_exp_shifted(s, key_rows, top);
            uint16_t *w = weights + r * k2;
            row_to_bf16(s, key_rows, w);
            if (k2 > key_rows) w[key_rows] = 0;
        }
        const uint32_t *wp = (const uint32_t *)weights;
        for (int64_t r = 0; r < rows; r += 4) {
            const int64_t rr = rows - r < 4 ? rows - r : 4;
            for (int64_t c = 0; c < chunks; c += 4) {
                const int64_t cc = chunks - c < 4 ? chunks - c : 4;
                const uint32_t *wr = wp + r * (k2 / 2);
                float *o = out + (row + r) * out_stride + 16 * c;
                output_any(wr, k2 / 2, value_pairs + c, chunks, k2 / 2, inverse + r, o, out_stride, (int)rr, (int)cc);
            }
        }
    }
}
