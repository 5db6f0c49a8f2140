// Matrix products y[M, N] = x[M, K] · W[N, K]^T on oneDNN (Debian's libdnnl), with the weights
// packed once into the layout oneDNN prefers for this CPU. Two precisions: f32, and int8
// (weights symmetric per output channel, activations quantized per row at each product,
// int32 accumulation, f32 out) that runs on VNNI where the CPU has it. oneDNN picks the
// instruction set at run time (AVX-512 VNNI, AVX2 VNNI, AVX2, SSE4.1); the name of what ran is
// available for reports.
#ifndef L2PD_DNNL_MATMUL_H
#define L2PD_DNNL_MATMUL_H

#include <stddef.h>
#include <stdint.h>

typedef struct l2pd_matmul l2pd_matmul;

// Symmetric int8 quantization of each of `rows` rows of `cols` floats: scale[r] = max|w[r]| / levels
// (1 for an all-zero row), q = round(w / scale) clamped to [-levels, levels].
void l2pd_quantize_rows(const float *w, int64_t rows, int64_t cols, int levels, int8_t *q, float *scales);

// The weight levels int8 products can use on this CPU: 127 with VNNI (AVX-512 or AVX2). Without
// it oneDNN multiplies through 16-bit pair sums that overflow with full-range weights against
// its shifted activations, so weights keep 7 bits there: 63.
int l2pd_matmul_weight_levels(void);

// A product with f32 weights `w` ([n, k], row-major). NULL on failure, with a reason.
l2pd_matmul *l2pd_matmul_create_f32(const float *w, int64_t n, int64_t k, char *error, size_t error_size);

// A product with int8 weights `q` ([n, k], row-major) and one scale per output row.
l2pd_matmul *l2pd_matmul_create_s8(const int8_t *q, const float *scales, int64_t n, int64_t k, char *error, size_t error_size);

// y[m, n] = x[m, k] · W^T, `threads` OpenMP threads (0: oneDNN's default). Rows of x and y are
// contiguous (strides k and n). Returns 0, or a oneDNN status with a reason.
int l2pd_matmul_run(l2pd_matmul *matmul, const float *x, int64_t m, float *y, int threads, char *error, size_t error_size);

// The implementation oneDNN chose (for example "brg:avx512_core_vnni"), and bytes of packed weights.
const char *l2pd_matmul_implementation(const l2pd_matmul *matmul);
size_t l2pd_matmul_weight_bytes(const l2pd_matmul *matmul);

void l2pd_matmul_free(l2pd_matmul *matmul);

#endif
