#include "dnnl_matmul.h"

#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Debian's oneDNN runs on GNU OpenMP (libgomp); its thread count is OpenMP's. Declared here
// because clang's include path has no omp.h.
extern void omp_set_num_threads(int);
// GNU OpenMP's entry points (what gcc emits for `#pragma omp parallel`), so the activation
// passes below share the threads oneDNN already keeps warm.
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);

// Primitives made for one M each (oneDNN's fastest kernels need M fixed), most recent first;
// products whose M is not here use the general primitive (M given at run time) until made.
#define L2PD_SHAPES 16

struct shaped {
    int64_t m;
    dnnl_primitive_t primitive;
};

struct l2pd_matmul {
    dnnl_engine_t engine;
    dnnl_primitive_t primitive;  // M = 256, the one that chose the layout
    dnnl_primitive_attr_t attr;
    dnnl_memory_desc_t packed;
    struct shaped shapes[L2PD_SHAPES];
    int shape_count;
    dnnl_memory_t weights;  // packed
    int64_t n, k;
    int int8;
    char implementation[96];
    size_t weight_bytes;
    // int8 only: per-row activation scratch, grown as needed (one product at a time per object).
    int8_t *xq;
    float *xscale;
    int64_t capacity;
};

static int fail(dnnl_status_t status, const char *what, char *error, size_t size) {
    if (error != NULL && size > 0) snprintf(error, size, "oneDNN %s failed (status %d)", what, (int)status);
    return (int)status;
}

#define TRY(call, what)                                              \
    do {                                                             \
        dnnl_status_t s_ = (call);                                   \
        if (s_ != dnnl_success) {                                    \
            fail(s_, what, error, error_size);                       \
            goto failed;                                             \
        }                                                            \
    } while (0)

int l2pd_matmul_weight_levels(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    int vnni = isa == dnnl_cpu_isa_avx512_core_vnni || isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx ||
               isa == dnnl_cpu_isa_avx2_vnni;
    return vnni ? 127 : 63;
}

// Rows quantized symmetrically to [-levels, levels], one scale per row. Written so the compiler
// vectorizes every loop: no library calls, rounding to nearest even by the 1.5 * 2^23 trick
// (|v| <= 127 here). Built twice: for the baseline and for AVX-512, picked at run time.
#define QUANTIZE_ROWS_BODY                                                    \
    const float magic = 12582912.0f;                                          \
    for (int64_t r = 0; r < rows; r++) {                                      \
        const float *row = w + r * cols;                                      \
        int8_t *out = q + r * cols;                                           \
        float top = 0;                                                        \
        for (int64_t c = 0; c < cols; c++) {                                  \
            float a = row[c] < 0 ? -row[c] : row[c];                          \
            top = a > top ? a : top;                                          \
        }                                                                     \
        const float limit = (float)levels;                                    \
        float scale = top > 0 ? top / limit : 1.0f;                           \
        float inverse = 1.0f / scale;                                         \
        for (int64_t c = 0; c < cols; c++) {                                  \
            float v = row[c] * inverse;                                       \
            v = v > limit ? limit : (v < -limit ? -limit : v);                \
            out[c] = (int8_t)(int32_t)((v + magic) - magic);                  \
        }                                                                     \
        scales[r] = scale;                                                    \
    }

static void quantize_rows_baseline(const float *w, int64_t rows, int64_t cols, int levels, int8_t *q, float *scales) {
    QUANTIZE_ROWS_BODY
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void quantize_rows_avx512(
    const float *w, int64_t rows, int64_t cols, int levels, int8_t *q, float *scales) {
    QUANTIZE_ROWS_BODY
}

// Each row of `y` times its activation scale.
#define SCALE_ROWS_BODY                                     \
    for (int64_t r = 0; r < rows; r++) {                    \
        float scale = xscale[r];                            \
        float *row = y + r * n;                             \
        for (int64_t c = 0; c < n; c++) row[c] *= scale;    \
    }

static void scale_rows_baseline(float *y, int64_t rows, int64_t n, const float *xscale) { SCALE_ROWS_BODY }

__attribute__((target("avx512f"))) static void scale_rows_avx512(float *y, int64_t rows, int64_t n, const float *xscale) {
    SCALE_ROWS_BODY
}

static int use_avx512(void) {
    static int known = -1;
    if (known < 0) {
        // L2PD_KERNELS=portable|avx2 (as for the element-wise kernels) keeps the baseline build.
        const char *asked = getenv("L2PD_KERNELS");
        int allowed = asked == NULL || strcmp(asked, "avx512") == 0 || strcmp(asked, "auto") == 0 || asked[0] == 0;
        __builtin_cpu_init();
        known = allowed && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl");
    }
    return known;
}

void l2pd_quantize_rows(const float *w, int64_t rows, int64_t cols, int levels, int8_t *q, float *scales) {
    if (use_avx512()) {
        quantize_rows_avx512(w, rows, cols, levels, q, scales);
    } else {
        quantize_rows_baseline(w, rows, cols, levels, q, scales);
    }
}

// The activation passes of one product, split by rows over OpenMP's threads.
struct activation_job {
    const float *x;
    int64_t rows, k, n;
    int levels;
    int8_t *q;
    float *scales;
    float *y;
};

static void rows_of_this_thread(int64_t rows, int64_t *begin, int64_t *end) {
    int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
    *begin = rows * t / count;
    *end = rows * (t + 1) / count;
}

static void quantize_part(void *data) {
    struct activation_job *job = data;
    int64_t begin, end;
    rows_of_this_thread(job->rows, &begin, &end);
    l2pd_quantize_rows(job->x + begin * job->k, end - begin, job->k, job->levels, job->q + begin * job->k, job->scales + begin);
}

static void scale_part(void *data) {
    struct activation_job *job = data;
    int64_t begin, end;
    rows_of_this_thread(job->rows, &begin, &end);
    if (use_avx512()) {
        scale_rows_avx512(job->y + begin * job->n, end - begin, job->n, job->scales + begin);
    } else {
        scale_rows_baseline(job->y + begin * job->n, end - begin, job->n, job->scales + begin);
    }
}

// Runs `part` on `threads` threads when the pass is large enough to pay for waking them.
static void activation_pass(void (*part)(void *), struct activation_job *job, int threads, int64_t elements) {
    if (threads > 1 && job->rows > 1 && elements >= (1 << 16)) {
        GOMP_parallel(part, job, (unsigned)(threads < job->rows ? threads : job->rows), 0);
    } else {
        if (part == quantize_part) {
            l2pd_quantize_rows(job->x, job->rows, job->k, job->levels, job->q, job->scales);
        } else if (use_avx512()) {
            scale_rows_avx512(job->y, job->rows, job->n, job->scales);
        } else {
            scale_rows_baseline(job->y, job->rows, job->n, job->scales);
        }
    }
}

static l2pd_matmul *create(const void *w, const float *scales, int64_t n, int64_t k, int int8, char *error, size_t error_size) {
    l2pd_matmul *mm = calloc(1, sizeof *mm);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_t user = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_primitive_desc_t reorder_pd = NULL;
    dnnl_stream_t stream = NULL;
    if (mm == NULL) return NULL;
    mm->n = n;
    mm->k = k;
    mm->int8 = int8;
    TRY(dnnl_engine_create(&mm->engine, dnnl_cpu, 0), "engine");
    dnnl_data_type_t type = int8 ? dnnl_s8 : dnnl_f32;
    // The weights are packed once, in the layout oneDNN wants for a typical M (a full pass);
    // each M then gets its own primitive over that layout (see primitive_for).
    dnnl_dims_t src_dims = {256, k}, weight_dims = {k, n}, dst_dims = {256, n};
    dnnl_memory_desc_t src, wanted, dst, user_md;
    TRY(dnnl_memory_desc_init_by_tag(&src, 2, src_dims, type, dnnl_ab), "source descriptor");
    TRY(dnnl_memory_desc_init_by_tag(&wanted, 2, weight_dims, type, dnnl_format_tag_any), "weight descriptor");
    TRY(dnnl_memory_desc_init_by_tag(&dst, 2, dst_dims, dnnl_f32, dnnl_ab), "destination descriptor");
    TRY(dnnl_primitive_attr_create(&attr), "attributes");
    if (int8) TRY(dnnl_primitive_attr_set_output_scales(attr, n, 1 << 1, scales), "output scales");
    dnnl_matmul_desc_t desc;
    TRY(dnnl_matmul_desc_init(&desc, &src, &wanted, NULL, &dst), "matmul descriptor");
    TRY(dnnl_primitive_desc_create(&pd, &desc, attr, mm->engine, NULL), "matmul");
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(mm->implementation, sizeof mm->implementation, "%s", impl ? impl : "unknown");
    const dnnl_memory_desc_t *packed = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    mm->weight_bytes = dnnl_memory_desc_get_size(packed);
    TRY(dnnl_primitive_create(&mm->primitive, pd), "matmul primitive");
    mm->packed = *packed;
    // W is [n, k] row-major: as a k x n matrix that is the "ba" layout. Reorder it once.
    TRY(dnnl_memory_desc_init_by_tag(&user_md, 2, weight_dims, type, dnnl_ba), "weight layout");
    TRY(dnnl_memory_create(&user, &user_md, mm->engine, (void *)w), "weight memory");
    TRY(dnnl_memory_create(&mm->weights, packed, mm->engine, DNNL_MEMORY_ALLOCATE), "packed weights");
    TRY(dnnl_reorder_primitive_desc_create(&reorder_pd, &user_md, mm->engine, packed, mm->engine, NULL), "reorder");
    TRY(dnnl_primitive_create(&reorder, reorder_pd), "reorder primitive");
    TRY(dnnl_stream_create(&stream, mm->engine, dnnl_stream_default_flags), "stream");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, mm->weights}};
    TRY(dnnl_primitive_execute(reorder, stream, 2, args), "weight reorder");
    TRY(dnnl_stream_wait(stream), "weight reorder");
    dnnl_stream_destroy(stream);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(user);
    dnnl_primitive_desc_destroy(pd);
    mm->attr = attr;
    return mm;
failed:
    if (stream) dnnl_stream_destroy(stream);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (user) dnnl_memory_destroy(user);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr && mm->attr != attr) dnnl_primitive_attr_destroy(attr);
    l2pd_matmul_free(mm);
    return NULL;
}

l2pd_matmul *l2pd_matmul_create_f32(const float *w, int64_t n, int64_t k, char *error, size_t error_size) {
    return create(w, NULL, n, k, 0, error, error_size);
}

l2pd_matmul *l2pd_matmul_create_s8(const int8_t *q, const float *scales, int64_t n, int64_t k, char *error, size_t error_size) {
    return create(q, scales, n, k, 1, error, error_size);
}

// The primitive for `m` rows over the packed weights, made on first use and kept among the
// most recent; NULL if oneDNN has none for that layout.
static dnnl_primitive_t primitive_for(l2pd_matmul *mm, int64_t m) {
    if (m == 256) return mm->primitive;
    for (int i = 0; i < mm->shape_count; i++) {
        if (mm->shapes[i].m != m) continue;
        struct shaped hit = mm->shapes[i];
        memmove(mm->shapes + 1, mm->shapes, (size_t)i * sizeof hit);
        mm->shapes[0] = hit;
        return hit.primitive;
    }
    dnnl_data_type_t type = mm->int8 ? dnnl_s8 : dnnl_f32;
    dnnl_dims_t src_dims = {m, mm->k}, dst_dims = {m, mm->n};
    dnnl_memory_desc_t src, dst;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t made = NULL;
    if (dnnl_memory_desc_init_by_tag(&src, 2, src_dims, type, dnnl_ab) != dnnl_success) return NULL;
    if (dnnl_memory_desc_init_by_tag(&dst, 2, dst_dims, dnnl_f32, dnnl_ab) != dnnl_success) return NULL;
    if (dnnl_matmul_desc_init(&desc, &src, &mm->packed, NULL, &dst) != dnnl_success) return NULL;
    if (dnnl_primitive_desc_create(&pd, &desc, mm->attr, mm->engine, NULL) != dnnl_success) return NULL;
    if (dnnl_primitive_create(&made, pd) != dnnl_success) made = NULL;
    dnnl_primitive_desc_destroy(pd);
    if (made == NULL) return NULL;
    if (mm->shape_count == L2PD_SHAPES) dnnl_primitive_destroy(mm->shapes[--mm->shape_count].primitive);
    memmove(mm->shapes + 1, mm->shapes, (size_t)mm->shape_count * sizeof mm->shapes[0]);
    mm->shapes[0] = (struct shaped){m, made};
    mm->shape_count++;
    return made;
}

int l2pd_matmul_run(l2pd_matmul *mm, const float *x, int64_t m, float *y, int threads, char *error, size_t error_size) {
    if (m <= 0) return 0;
    if (threads > 0) omp_set_num_threads(threads);
    const void *source = x;
    if (mm->int8) {
        if (m > mm->capacity) {
            int8_t *xq = realloc(mm->xq, (size_t)(m * mm->k));
            float *xs = realloc(mm->xscale, (size_t)m * sizeof(float));
            if (xq != NULL) mm->xq = xq;
            if (xs != NULL) mm->xscale = xs;
            if (xq == NULL || xs == NULL) return fail(dnnl_out_of_memory, "activation buffer", error, error_size);
            mm->capacity = m;
        }
        struct activation_job job = {x, m, mm->k, mm->n, 127, mm->xq, mm->xscale, y};
        activation_pass(quantize_part, &job, threads, m * mm->k);
        source = mm->xq;
    }
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t src_dims = {m, mm->k}, dst_dims = {m, mm->n};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&src, 2, src_dims, mm->int8 ? dnnl_s8 : dnnl_f32, dnnl_ab);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&dst, 2, dst_dims, dnnl_f32, dnnl_ab);
    if (s != dnnl_success) return fail(s, "descriptors", error, error_size);
    dnnl_memory_t src_memory = NULL, dst_memory = NULL;
    dnnl_stream_t stream = NULL;
    s = dnnl_memory_create(&src_memory, &src, mm->engine, (void *)source);
    if (s == dnnl_success) s = dnnl_memory_create(&dst_memory, &dst, mm->engine, y);
    if (s == dnnl_success) s = dnnl_stream_create(&stream, mm->engine, dnnl_stream_default_flags);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src_memory}, {DNNL_ARG_WEIGHTS, mm->weights}, {DNNL_ARG_DST, dst_memory}};
        dnnl_primitive_t primitive = primitive_for(mm, m);
        s = primitive == NULL ? dnnl_unimplemented : dnnl_primitive_execute(primitive, stream, 3, args);
        if (s == dnnl_success) s = dnnl_stream_wait(stream);
    }
    if (stream) dnnl_stream_destroy(stream);
    if (src_memory) dnnl_memory_destroy(src_memory);
    if (dst_memory) dnnl_memory_destroy(dst_memory);
    if (s != dnnl_success) return fail(s, "matmul", error, error_size);
    if (mm->int8) {
        // oneDNN applied the weights' scales; each row's own activation scale is applied here.
        struct activation_job job = {x, m, mm->k, mm->n, 127, mm->xq, mm->xscale, y};
        activation_pass(scale_part, &job, threads, m * mm->n);
    }
    return 0;
}

const char *l2pd_matmul_implementation(const l2pd_matmul *mm) { return mm->implementation; }
size_t l2pd_matmul_weight_bytes(const l2pd_matmul *mm) { return mm->weight_bytes; }

void l2pd_matmul_free(l2pd_matmul *mm) {
    if (mm == NULL) return;
    if (mm->primitive) dnnl_primitive_destroy(mm->primitive);
    for (int i = 0; i < mm->shape_count; i++) dnnl_primitive_destroy(mm->shapes[i].primitive);
    if (mm->attr) dnnl_primitive_attr_destroy(mm->attr);
    if (mm->weights) dnnl_memory_destroy(mm->weights);
    if (mm->engine) dnnl_engine_destroy(mm->engine);
    free(mm->xq);
    free(mm->xscale);
    free(mm);
}
