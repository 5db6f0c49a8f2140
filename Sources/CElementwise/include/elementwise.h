// Element-wise kernels of the forward pass (softmax pieces, RMSNorm, SwiGLU gate, rotary) in three
// builds of the same code: AVX-512, AVX2 with FMA, and portable C for baseline x86-64 (and
// every other CPU). The first call picks the widest the CPU runs; L2PD_KERNELS=portable|avx2|
// avx512 asks for one (falling back when the CPU lacks it). exp uses one polynomial
// everywhere (Cephes' range reduction, degree 6, relative error about 2e-7); the builds differ
// only in rounding where FMA fuses a multiply and an add.
#ifndef L2PD_ELEMENTWISE_H
#define L2PD_ELEMENTWISE_H

#include <stdint.h>

// Largest of x[0..<n] (-infinity when n is 0).
float l2pd_max(const float *x, int64_t n);
// In place x[i] = exp(x[i] - shift); returns the sum of the results.
float l2pd_exp_shifted(float *x, int64_t n, float shift);
// In place x[i] *= factor.
void l2pd_scale(float *x, int64_t n, float factor);
// out = x / sqrt(mean(x^2) + eps) * w for one row of n (out may alias x).
void l2pd_rms_norm(const float *x, const float *w, float *out, int64_t n, float eps);
// In place gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i].
void l2pd_silu_gate(float *gate, const float *up, int64_t n);
// Rotary embedding of one row in place, "rotate half" form: each of `heads` heads is 2 * half
// floats [a, b]; a' = a cos - b sin, b' = b cos + a sin with the row's angles c[0..<half],
// s[0..<half].
void l2pd_rotary(float *x, int64_t heads, int64_t half, const float *c, const float *s);

// The build in use: "avx512", "avx2" or "portable".
const char *l2pd_elementwise_kernels(void);

// One build's entry points, for tests and benchmarks that compare builds side by side
// without changing the one in use.
typedef struct l2pd_elementwise {
    const char *name;
    float (*max)(const float *, int64_t);
    float (*exp_shifted)(float *, int64_t, float);
    void (*scale)(float *, int64_t, float);
    void (*rms_norm)(const float *, const float *, float *, int64_t, float);
    void (*silu_gate)(float *, const float *, int64_t);
    void (*rotary)(float *, int64_t, int64_t, const float *, const float *);
} l2pd_elementwise;

// The build named `name`, or NULL when it does not exist or this CPU cannot run it.
const l2pd_elementwise *l2pd_elementwise_named(const char *name);

#endif
