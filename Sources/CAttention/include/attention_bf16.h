// One attention head with its two products in BF16 on AVX-512 BF16 (`vdpbf16ps`): queries,
// keys, values and the softmax weights are rounded to BF16 (round to nearest even), every
// product accumulates in F32, the softmax itself runs in F32. This is what PyTorch's BF16 path
// does on the same CPUs; it roughly halves the time of attention's products against F32 FMA.
// Callers keep their F32 path for CPUs without AVX-512 BF16 and for head widths it does not
// take (not a multiple of 16).
#ifndef L2PD_ATTENTION_BF16_H
#define L2PD_ATTENTION_BF16_H

#include <stddef.h>
#include <stdint.h>

// 1 when this CPU runs the BF16 kernel (AVX-512 F, BW, VL and BF16) and L2PD_KERNELS does not
// ask for a narrower build ("portable" or "avx2"); 0 otherwise.
int l2pd_attention_bf16_available(void);

// Bytes of scratch one call needs (64-byte aligned by the caller); 0 when head_dim is not a
// positive multiple of 16.
size_t l2pd_attention_bf16_scratch_bytes(int64_t query_rows, int64_t key_rows, int64_t head_dim);

// out[r, :] = softmax(scale * q[r, :] k^T) v for query_rows rows of one head. Rows of q, k, v
// and out are head_dim floats apart from their strides (in floats). Needs
// l2pd_attention_bf16_available() and a scratch of l2pd_attention_bf16_scratch_bytes().
void l2pd_attention_bf16(const float *q, int64_t q_stride, int64_t query_rows, const float *k, const float *v,
                         int64_t kv_stride, int64_t key_rows, int64_t head_dim, float scale, float *out,
                         int64_t out_stride, void *scratch);

#endif
