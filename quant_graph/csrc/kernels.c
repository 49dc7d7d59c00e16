/*
 * quant_graph's CPU kernels: one pass over memory per operator.
 *
 * Every kernel works a row at a time: the row is widened to float32 in a
 * thread-local buffer that stays in L1/L2, transformed in place, then rounded
 * and narrowed into the output. The arithmetic is the same sequence of IEEE
 * float32 operations as the portable torch code in the Python modules (built
 * with -ffp-contract=off so no FMA changes a rounding), so both paths give
 * bit-identical results; the tests hold them to that.
 *
 * Loaded with ctypes by quant_graph/native.py; no Python or torch headers. Each
 * kernel takes one struct of named arguments, declared once in kernels.h as an X-macro;
 * qg_abi_layout() describes those structs so native.py can refuse a library whose
 * layout differs from its own mirror of them.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "kernels.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif

static float half_bits_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* subnormal half: normalise into a float32 */
        exp = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void load_row(float *restrict dst, const void *src, int dtype, int64_t n) {
    int64_t i = 0;
    switch (dtype) {
    case QG_F16: {
        const uint16_t *s = (const uint16_t *)src;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
        for (; i < n; i++) dst[i] = half_bits_to_float(s[i]);
        break;
    }
    case QG_BF16: {
        const uint16_t *s = (const uint16_t *)src;
        for (; i < n; i++) {
            uint32_t bits = (uint32_t)s[i] << 16;
            float f;
            memcpy(&f, &bits, sizeof f);
            dst[i] = f;
        }
        break;
    }
    case QG_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case QG_I32: {
        const int32_t *s = (const int32_t *)src;
        for (; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    }
}

/* NaN -> 0, clamp to [lo, hi], round half to even. Clamping first is exact
 * because lo and hi are integers; it also keeps the int cast defined. */
static inline float saturate(float v, float lo, float hi) {
    v = v != v ? 0.0f : v;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return rintf(v);
}

/* 0.0f where zero, else v, by masking v's bits: GCC keeps the division that computes v
 * under the condition of a plain select (a division may trap), and then the loop does
 * not vectorize; computed every time and masked, it does. */
static inline float zero_where(float v, int zero) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= (uint32_t)(zero != 0) - 1u;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* The output format: which storage writer, and the range [lo, hi] to saturate to
 * (quant_graph/_dtypes.py holds both; the C side keeps no range of its own). */
typedef struct {
    int kind;
    double lo, hi;
} qg_format;

/*
 * dst[i] = saturate(v[i] / div + add) as int8, or as uint8 when is_unsigned: the narrowing
 * loop of both byte formats. GCC vectorizes the scalar form as a rounding, a truncating
 * conversion and masking packs: 2.2 us for 7168 values, the largest part of a per-token
 * row (measured). With AVX2 it is 0.7 us as a clamp in float32, a conversion in the current
 * rounding mode (round half to even, as rintf's) and saturating packs, which change no
 * value of a clamped integer: the same bits.
 */
static inline __attribute__((always_inline)) void store_bytes(void *dst, const float *restrict v, int64_t n,
                                                              float div, float add, float lo, float hi,
                                                              int is_unsigned) {
    int64_t i = 0;
#if defined(__AVX2__)
    const __m256 vdiv = _mm256_set1_ps(div), vadd = _mm256_set1_ps(add), vlo = _mm256_set1_ps(lo),
                 vhi = _mm256_set1_ps(hi);
    /* the packs work within 128-bit lanes: this puts the 32 bytes back in order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 32 <= n; i += 32) {
        __m256i words[4];
        for (int k = 0; k < 4; k++) {
            __m256 x = _mm256_add_ps(_mm256_div_ps(_mm256_loadu_ps(v + i + 8 * k), vdiv), vadd);
            x = _mm256_and_ps(x, _mm256_cmp_ps(x, x, _CMP_ORD_Q)); /* NaN -> 0 */
            words[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(x, vlo), vhi));
        }
        const __m256i low = _mm256_packs_epi32(words[0], words[1]), high = _mm256_packs_epi32(words[2], words[3]);
        const __m256i bytes = is_unsigned ? _mm256_packus_epi16(low, high) : _mm256_packs_epi16(low, high);
        _mm256_storeu_si256((__m256i *)((char *)dst + i), _mm256_permutevar8x32_epi32(bytes, order));
    }
#endif
    if (is_unsigned)
        for (; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)saturate(v[i] / div + add, lo, hi);
    else
        for (; i < n; i++) ((int8_t *)dst)[i] = (int8_t)saturate(v[i] / div + add, lo, hi);
}

/*
 * The float8 bits of v, rounded to nearest, ties to even, as torch's conversion rounds; v is
 * finite and within the format's range (the caller clamps it). `mantissa` and `bias` name the
 * format (e4m3fn: 3 and 7, e5m2: 2 and 15). Below the smallest normal, 2^(1 - bias), the
 * code is the value in units of the smallest subnormal, rounded (rintf rounds half to even);
 * at or above it, the float32 bits rounded to `mantissa` bits (a carry into the exponent is
 * the next binade's code) with the exponent rebiased. Branch-free, so the loop vectorizes.
 */
static inline uint8_t float8_bits(float v, int mantissa, int bias) {
    /* int32 throughout (a magnitude's bits are below 2^31): AVX2 has signed compares and
     * conversions only, and the unsigned ones would be emulated */
    int32_t bits;
    memcpy(&bits, &v, sizeof bits);
    const int32_t sign = (bits >> 24) & 0x80, magnitude = bits & 0x7fffffff;
    const int shift = 23 - mantissa;
    float a;
    memcpy(&a, &magnitude, sizeof a);
    const int32_t subnormal = (int32_t)rintf(a * (float)(1 << (bias - 1 + mantissa)));
    const int32_t rounded = (magnitude + ((1 << (shift - 1)) - 1) + ((magnitude >> shift) & 1)) >> shift;
    const int32_t normal = rounded - ((127 - bias) << mantissa);
    return (uint8_t)(sign | (magnitude < (128 - bias) << 23 ? subnormal : normal));
}

/* dst[i] = float8 bits of v[i] / div + add, NaN to 0 and clamped to [lo, hi] first (the
 * portable path's nan_to_num, clamp and cast). GCC's own vectorization of the scalar loop
 * spills to the stack (5 us for 7168 values, measured); the AVX2 loop does float8_bits'
 * steps on 8 values at a time, converting in the current rounding mode (half to even, as
 * rintf), and packs the codes (0..255) as store_bytes does. */
static inline __attribute__((always_inline)) void store_float8(uint8_t *restrict d, const float *restrict v, int64_t n,
                                                               float div, float add, float lo, float hi,
                                                               int mantissa, int bias) {
    int64_t i = 0;
#if defined(__AVX2__)
    const __m256 vdiv = _mm256_set1_ps(div), vadd = _mm256_set1_ps(add), vlo = _mm256_set1_ps(lo),
                 vhi = _mm256_set1_ps(hi), subnormal_unit = _mm256_set1_ps((float)(1 << (bias - 1 + mantissa)));
    const __m256i shift = _mm256_set1_epi32(23 - mantissa), one = _mm256_set1_epi32(1),
                  half_less_one = _mm256_set1_epi32((1 << (22 - mantissa)) - 1),
                  rebias = _mm256_set1_epi32((127 - bias) << mantissa), smallest_normal = _mm256_set1_epi32((128 - bias) << 23),
                  magnitude_bits = _mm256_set1_epi32(0x7fffffff), sign_bit = _mm256_set1_epi32(0x80);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 32 <= n; i += 32) {
        __m256i codes[4];
        for (int k = 0; k < 4; k++) {
            __m256 x = _mm256_add_ps(_mm256_div_ps(_mm256_loadu_ps(v + i + 8 * k), vdiv), vadd);
            x = _mm256_and_ps(x, _mm256_cmp_ps(x, x, _CMP_ORD_Q)); /* NaN -> 0 */
            const __m256i bits = _mm256_castps_si256(_mm256_min_ps(_mm256_max_ps(x, vlo), vhi));
            const __m256i magnitude = _mm256_and_si256(bits, magnitude_bits);
            const __m256i subnormal = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(magnitude), subnormal_unit));
            const __m256i lsb = _mm256_and_si256(_mm256_srlv_epi32(magnitude, shift), one);
            const __m256i rounded = _mm256_srlv_epi32(_mm256_add_epi32(_mm256_add_epi32(magnitude, half_less_one), lsb), shift);
            const __m256i normal = _mm256_sub_epi32(rounded, rebias);
            const __m256i code = _mm256_blendv_epi8(normal, subnormal, _mm256_cmpgt_epi32(smallest_normal, magnitude));
            codes[k] = _mm256_or_si256(code, _mm256_and_si256(_mm256_srli_epi32(bits, 24), sign_bit));
        }
        const __m256i low = _mm256_packs_epi32(codes[0], codes[1]), high = _mm256_packs_epi32(codes[2], codes[3]);
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_permutevar8x32_epi32(_mm256_packus_epi16(low, high), order));
    }
#endif
    for (; i < n; i++) {
        float x = v[i] / div + add;
        x = x != x ? 0.0f : x;
        x = x < lo ? lo : x;
        d[i] = float8_bits(x > hi ? hi : x, mantissa, bias);
    }
}

/* The `add` of a formula without an offset: x + -0.0 is x for every x, where x + 0.0 turns
 * -0.0 into +0.0, which a float8 output would keep (the portable path adds nothing). */
#define QG_NO_OFFSET (-0.0f)

/* dst = v / div + add in the output's format: saturate()d for the integer ones. Inlined into each
 * caller so the division and addition fuse into the narrowing loop (one pass over v);
 * callers with no divisor or offset pass 1 and QG_NO_OFFSET, which change no value. */
static inline __attribute__((always_inline)) void store_row(void *dst, qg_format fmt, float *restrict v, int64_t n,
                                                            float div, float add) {
    const float lo = (float)fmt.lo, hi = (float)fmt.hi;
    switch (fmt.kind) {
    case QG_OUT_INT8:
        store_bytes(dst, v, n, div, add, lo, hi, 0);
        break;
    case QG_OUT_UINT8:
        store_bytes(dst, v, n, div, add, lo, hi, 1);
        break;
    case QG_OUT_INT32: {
        /* int32's ends are not float32 values: saturate in double, where they are. */
        int32_t *d = (int32_t *)dst;
        for (int64_t i = 0; i < n; i++) {
            float f = v[i] / div + add;
            double x = f != f ? 0.0 : (double)f;
            x = x < fmt.lo ? fmt.lo : x;
            x = x > fmt.hi ? fmt.hi : x;
            d[i] = (int32_t)rint(x);
        }
        break;
    }
    case QG_OUT_FLOAT8_E4M3FN:
        store_float8((uint8_t *)dst, v, n, div, add, lo, hi, 3, 7);
        break;
    case QG_OUT_FLOAT8_E5M2:
        store_float8((uint8_t *)dst, v, n, div, add, lo, hi, 2, 15);
        break;
    case QG_OUT_INT4: {
        /* element 8k+j sits in bits [4j, 4j+4) of word k */
        for (int64_t i = 0; i < n; i++) v[i] = saturate(v[i] / div + add, lo, hi);
        int32_t *d = (int32_t *)dst;
        for (int64_t k = 0; k < n / 8; k++) {
            uint32_t word = 0;
            for (int j = 0; j < 8; j++) word |= ((uint32_t)(int32_t)v[8 * k + j] & 0xfu) << (4 * j);
            d[k] = (int32_t)word;
        }
        break;
    }
    }
}

static int64_t out_row_bytes(int kind, int64_t cols) {
    switch (kind) {
    case QG_OUT_INT4: return cols / 8 * 4;
    case QG_OUT_INT32: return cols * 4;
    default: return cols;
    }
}

static int64_t in_elem_bytes(int dtype) { return (dtype == QG_F16 || dtype == QG_BF16) ? 2 : 4; }

/* A fresh output faults its pages in on first write, 4 KiB at a time: for a 117 MB y that
 * cost more than the kernel's own work. Where transparent huge pages are on request
 * ("madvise", a common default), ask for them on the 2 MiB-aligned inside of a large
 * output before the first write: a fault then maps 2 MiB (measured: a fresh 117 MB fill,
 * 90 ms -> 23 ms; 16 ms into touched pages). Only advice: the values are the same either way. */
static void prefer_huge_pages(void *p, int64_t bytes) {
#if defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21;
    if (bytes < (int64_t)(4 * huge)) return;
    const uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + (uintptr_t)bytes) & ~(huge - 1);
    madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* The kernel's scratch memory, taken before its parallel region in one allocation, so a
 * failure is one NULL to report rather than a thread writing through its own: `floats`
 * float32 values for each of up to `threads` threads (OpenMP's team is never larger). */
static float *thread_scratch(int threads, int64_t floats) {
    const size_t n = (size_t)(floats > 0 ? floats : 1), t = (size_t)(threads > 0 ? threads : 1);
    if (n > SIZE_MAX / sizeof(float) / t) return NULL;
    return (float *)malloc(t * n * sizeof(float));
}

/* This OpenMP thread's part of thread_scratch(threads, floats). */
static float *this_threads_scratch(float *scratch, int64_t floats) {
    return scratch + (int64_t)omp_get_thread_num() * (floats > 0 ? floats : 1);
}

/* The contiguous block of rows [r0, r1) this OpenMP thread takes. */
static void this_threads_rows(int64_t rows, int64_t *r0, int64_t *r1) {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    *r0 = rows * t / nt;
    *r1 = rows * (t + 1) / nt;
}

/* Index of the group that row r falls in, for cumulative row ends. */
static int64_t group_of_row(const int64_t *ends, int64_t groups, int64_t r, int64_t g) {
    while (g < groups - 1 && r >= ends[g]) g++;
    return g;
}

typedef struct {
    float max, min, absmax;
    int nan;
} row_stats;

/* Max/min in lanes of GCC vector types: a float max/min reduction does not vectorize
 * without fast-math (which would also change results); explicit lanes do. The lanes fill
 * one register of the target (-march=native): a vector twice the register's width is
 * lowered to scalar code with stack spills (measured: 4.9x slower on an AVX2 Zen 3).
 * NaN is tracked apart, as torch's reductions propagate it. */
#if defined(__AVX512F__)
#define QG_LANES 16
#else
#define QG_LANES 8
#endif
typedef float f32xN __attribute__((vector_size(QG_LANES * sizeof(float))));
typedef int32_t i32xN __attribute__((vector_size(QG_LANES * sizeof(int32_t))));

static inline f32xN select_lanes(i32xN mask, f32xN a, f32xN b) {
    return (f32xN)(((i32xN)a & mask) | ((i32xN)b & ~mask));
}

/* a > b ? a : b and a < b ? a : b, lane by lane. x86's maxps/minps are exactly these selects
 * (on NaN or equal lanes they return b), in one instruction where the masks take two; an
 * unordered compare finds a NaN in either of two vectors in one. */
#if defined(__AVX512F__)
#define lanes_max(a, b) ((f32xN)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define lanes_min(a, b) ((f32xN)_mm512_min_ps((__m512)(a), (__m512)(b)))
#define lanes_either_nan(a, b) ((i32xN)_mm512_maskz_mov_epi32(_mm512_cmp_ps_mask((__m512)(a), (__m512)(b), _CMP_UNORD_Q), _mm512_set1_epi32(-1)))
#elif defined(__AVX__)
#define lanes_max(a, b) ((f32xN)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define lanes_min(a, b) ((f32xN)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define lanes_either_nan(a, b) ((i32xN)_mm256_cmp_ps((__m256)(a), (__m256)(b), _CMP_UNORD_Q))
#else
#define lanes_max(a, b) select_lanes((a) > (b), (a), (b))
#define lanes_min(a, b) select_lanes((a) < (b), (a), (b))
#define lanes_either_nan(a, b) (((a) != (a)) | ((b) != (b)))
#endif

static row_stats stats_of(const float *restrict v, int64_t n) {
    f32xN mx = {0}, mn = {0};
    i32xN nan = {0};
    mx -= INFINITY;
    mn += INFINITY;
    int64_t i = 0;
    /* two independent chains per statistic, so an instruction's latency is hidden */
    f32xN mx2 = mx, mn2 = mn;
    for (; i + 2 * QG_LANES <= n; i += 2 * QG_LANES) {
        f32xN x, y;
        memcpy(&x, v + i, sizeof x);
        memcpy(&y, v + i + QG_LANES, sizeof y);
        /* max/min pass over a NaN: it is tracked apart, for two vectors in one compare */
        nan |= lanes_either_nan(x, y);
        mx = lanes_max(x, mx);
        mn = lanes_min(x, mn);
        mx2 = lanes_max(y, mx2);
        mn2 = lanes_min(y, mn2);
    }
    mx = lanes_max(mx2, mx);
    mn = lanes_min(mn2, mn);
    row_stats s = {-INFINITY, INFINITY, 0.0f, 0};
    for (int j = 0; j < QG_LANES; j++) {
        s.nan |= nan[j] != 0;
        s.max = mx[j] > s.max ? mx[j] : s.max;
        s.min = mn[j] < s.min ? mn[j] : s.min;
    }
    for (; i < n; i++) {
        s.nan |= v[i] != v[i];
        s.max = v[i] > s.max ? v[i] : s.max;
        s.min = v[i] < s.min ? v[i] : s.min;
    }
    if (n == 0) s.max = s.min = 0.0f;
    s.absmax = fabsf(s.max) > fabsf(s.min) ? fabsf(s.max) : fabsf(s.min);
    return s;
}

static void merge_stats(row_stats *into, row_stats s) {
    into->nan |= s.nan;
    into->max = s.max > into->max ? s.max : into->max;
    into->min = s.min < into->min ? s.min : into->min;
    into->absmax = s.absmax > into->absmax ? s.absmax : into->absmax;
}

/* scale (and offset) from a row's statistics, as SPEC.md writes them */
static void dynamic_params(row_stats s, int symmetric, float dst_max, float dst_span, float *scale,
                           float *offset) {
    if (s.nan) {
        *scale = NAN;
        *offset = NAN;
    } else if (symmetric) {
        *scale = s.absmax / dst_max;
        *offset = QG_NO_OFFSET;
    } else {
        *scale = (s.max - s.min) / dst_span;
        *offset = dst_max - s.max / *scale;
    }
}

static void dynamic_quant_row(float *restrict buf, int64_t cols, float scale, float offset, qg_format fmt,
                              void *y_row) {
    if (scale == 0.0f)
        memset(y_row, 0, (size_t)out_row_bytes(fmt.kind, cols));
    else
        store_row(y_row, fmt, buf, cols, scale, offset);
}

static void smooth_row(float *restrict buf, const float *restrict smooth, int64_t cols) {
    for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * smooth[i];
}

static void smooth_row_by(float *restrict buf, float factor, int64_t cols) {
    for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * factor;
}

void qg_widen(float *dst, const void *src, int32_t dtype, int64_t n) { load_row(dst, src, dtype, n); }

/* "struct/size: name:type@offset ...;" for every argument struct, into buf. */
int qg_abi_layout(char *buf, int size) {
    int n = 0;
#define QG_FIELD(type, name) n += snprintf(buf + n, (size_t)(size - n), " %s:%s@%zu", #name, #type, \
                                           offsetof(QG_STRUCT, name));
#define QG_STRUCT_LAYOUT(fields)                                                                     \
    n += snprintf(buf + n, (size_t)(size - n), "%s/%zu:", #fields, sizeof(QG_STRUCT));              \
    fields(QG_FIELD) n += snprintf(buf + n, (size_t)(size - n), ";");
#define QG_STRUCT qg_dynamic_quant_args
    QG_STRUCT_LAYOUT(QG_DYNAMIC_QUANT_ARGS)
#undef QG_STRUCT
#define QG_STRUCT qg_affine_quant_args
    QG_STRUCT_LAYOUT(QG_AFFINE_QUANT_ARGS)
#undef QG_STRUCT
#define QG_STRUCT qg_dequant_swiglu_quant_args
    QG_STRUCT_LAYOUT(QG_DEQUANT_SWIGLU_QUANT_ARGS)
#undef QG_STRUCT
    return n < size ? n : -1;
}

/* Running per-column statistics of one [M, H] slice: max and min with NaN sticky (once a
 * column meets a NaN its max and min stay NaN, as torch's reductions propagate it). The
 * selects vectorize to compare, or-unordered and blend. Folding partial statistics of
 * consecutive row ranges in row order with the same selects gives the bits one fold over
 * all the rows gives: a tie keeps the earlier value (0.0 against -0.0 included) and a
 * NaN the later one, either way. */
typedef struct {
    float *max, *min;
} column_stats;

static inline float fold_max(float acc, float v) { return (v > acc) | (v != v) ? v : acc; }
static inline float fold_min(float acc, float v) { return (v < acc) | (v != v) ? v : acc; }

/* Per channel, thread u's scratch holds its row buffer, then its column max, then its
 * column min: 3 * cols floats. */
static int64_t channel_scratch_floats(int64_t cols) { return 3 * (cols > 0 ? cols : 1); }

static column_stats threads_column_stats(float *scratch, int u, int64_t cols) {
    float *own = scratch + u * channel_scratch_floats(cols);
    const int64_t n = cols > 0 ? cols : 1;
    column_stats c = {own + n, own + 2 * n};
    return c;
}

static void column_stats_reset(column_stats c, int64_t cols) {
    for (int64_t i = 0; i < cols; i++) {
        c.max[i] = -INFINITY;
        c.min[i] = INFINITY;
    }
}

static void column_stats_add(column_stats c, const float *restrict v, int64_t cols) {
    float *restrict mx = c.max, *restrict mn = c.min;
    for (int64_t i = 0; i < cols; i++) {
        mx[i] = fold_max(mx[i], v[i]);
        mn[i] = fold_min(mn[i], v[i]);
    }
}

/* into = into followed by later, over columns [c0, c1) */
static void column_stats_merge(column_stats into, column_stats later, int64_t c0, int64_t c1) {
    for (int64_t i = c0; i < c1; i++) {
        into.max[i] = fold_max(into.max[i], later.max[i]);
        into.min[i] = fold_min(into.min[i], later.min[i]);
    }
}

/* dynamic_params of columns [c0, c1) (offset: NULL when symmetric), written as selects
 * that vectorize: a scalar call per column, with its branches, drew 70% of perf's samples in
 * the kernel at [1, 7168]. */
static void column_params(column_stats c, int64_t c0, int64_t c1, int symmetric, float dst_max, float dst_span,
                          float *restrict scale, float *restrict offset) {
    const float *restrict mx = c.max, *restrict mn = c.min;
    if (symmetric) {
        for (int64_t i = c0; i < c1; i++) {
            const float absmax = fabsf(mx[i]) > fabsf(mn[i]) ? fabsf(mx[i]) : fabsf(mn[i]);
            scale[i] = (mx[i] != mx[i]) | (mn[i] != mn[i]) ? NAN : absmax / dst_max;
        }
        return;
    }
    for (int64_t i = c0; i < c1; i++) {
        const int nan = (mx[i] != mx[i]) | (mn[i] != mn[i]);
        const float s = (mx[i] - mn[i]) / dst_span;
        scale[i] = nan ? NAN : s;
        offset[i] = nan ? NAN : dst_max - mx[i] / s;
    }
}

/*
 * quant_mode "perchannel": rows come in batches of channel_rows (M, >= 1) rows; scale and
 * offset are [batches, cols], from each column's statistics over its batch; smooth is
 * NULL or float32 [M], one factor per row of a batch.
 *
 * Every element's scale depends on all M rows, so each batch takes two sweeps over x,
 * both over whole rows in order (contiguous streams, as the per-token kernel reads).
 * Threads split the batch's rows. In the first sweep each folds its rows into its own
 * [cols] statistics (in L2); after a barrier each merges every thread's statistics in
 * thread order over a share of the columns and writes their scale and offset. In the
 * second sweep each quantizes its rows, last row first: the rows its first sweep read
 * last may still be in the shared L3 then (a small gain: an L3's worth of a large x).
 */
static int dynamic_quant_per_channel(const qg_dynamic_quant_args *a) {
    const int x_dtype = a->x_dtype, symmetric = a->symmetric;
    const int64_t rows = a->rows, cols = a->cols, m = a->channel_rows, batches = rows / m;
    const qg_format fmt = {a->out_kind, a->out_lo, a->out_hi};
    const float lo = (float)fmt.lo, hi = (float)fmt.hi;
    const int64_t x_stride = cols * in_elem_bytes(x_dtype), y_stride = out_row_bytes(fmt.kind, cols);
    float *scratch = thread_scratch(a->threads, channel_scratch_floats(cols));
    if (!scratch) return QG_OUT_OF_MEMORY;
#pragma omp parallel num_threads(a->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *buf = this_threads_scratch(scratch, channel_scratch_floats(cols));
        const column_stats mine = threads_column_stats(scratch, t, cols), merged = threads_column_stats(scratch, 0, cols);
        int64_t r0, r1, c0, c1;
        this_threads_rows(m, &r0, &r1);
        this_threads_rows(cols, &c0, &c1);
        for (int64_t b = 0; b < batches; b++) {
            const char *xbatch = (const char *)a->x + b * m * x_stride;
            float *scale = a->scale + b * cols, *offset = a->offset ? a->offset + b * cols : NULL;
            column_stats_reset(mine, cols);
            for (int64_t r = r0; r < r1; r++) {
                load_row(buf, xbatch + r * x_stride, x_dtype, cols);
                if (a->smooth) smooth_row_by(buf, a->smooth[r], cols);
                column_stats_add(mine, buf, cols);
            }
#pragma omp barrier
            for (int u = 1; u < nt; u++) column_stats_merge(merged, threads_column_stats(scratch, u, cols), c0, c1);
            column_params(merged, c0, c1, symmetric, a->dst_max, a->dst_span, scale, symmetric ? NULL : offset);
            /* every scale is written; the next batch's reset of thread 0's statistics waits for this
             * barrier too, so no thread still merges into it */
#pragma omp barrier
            for (int64_t r = r1 - 1; r >= r0; r--) {
                load_row(buf, xbatch + r * x_stride, x_dtype, cols);
                if (a->smooth) smooth_row_by(buf, a->smooth[r], cols);
                /* the steps of dynamic_quant_row with a divisor and offset per column: int8
                 * symmetric, the common case, in one loop; the rest through store_row, where
                 * v / 1 + 0 changes no value */
                void *y_row = (char *)a->y + (b * m + r) * y_stride;
                if (fmt.kind == QG_OUT_INT8 && !offset) {
                    int8_t *d = (int8_t *)y_row;
                    for (int64_t i = 0; i < cols; i++)
                        d[i] = (int8_t)saturate(zero_where(buf[i] / scale[i], scale[i] == 0.0f), lo, hi);
                    continue;
                }
                for (int64_t i = 0; i < cols; i++)
                    buf[i] = zero_where(offset ? buf[i] / scale[i] + offset[i] : buf[i] / scale[i], scale[i] == 0.0f);
                store_row(y_row, fmt, buf, cols, 1.0f, QG_NO_OFFSET);
            }
        }
    }
    free(scratch);
    return QG_OK;
}

/*
 * DynamicQuantV2. x: [rows, cols] contiguous; smooth: NULL or float32
 * [groups, cols]; group_ends: NULL (smooth row 0 for every row) or int64
 * cumulative row ends. per_tensor: one scale for the whole tensor; per_channel: see
 * dynamic_quant_per_channel.
 */
int qg_dynamic_quant(const qg_dynamic_quant_args *a) {
    prefer_huge_pages(a->y, a->rows * out_row_bytes(a->out_kind, a->cols));
    if (a->per_channel) return dynamic_quant_per_channel(a);
    const void *x = a->x;
    const int x_dtype = a->x_dtype, symmetric = a->symmetric, per_tensor = a->per_tensor, threads = a->threads;
    const int64_t rows = a->rows, cols = a->cols, groups = a->groups;
    const float *smooth = a->smooth;
    const int64_t *group_ends = a->group_ends;
    const qg_format fmt = {a->out_kind, a->out_lo, a->out_hi};
    const float dst_max = a->dst_max, dst_span = a->dst_span;
    void *y = a->y;
    float *scale = a->scale, *offset = a->offset;
    const char *xb = (const char *)x;
    char *yb = (char *)y;
    const int64_t x_stride = cols * in_elem_bytes(x_dtype);
    const int64_t y_stride = out_row_bytes(fmt.kind, cols);
    row_stats total = {-INFINITY, INFINITY, 0.0f, 0};
    if (rows == 0 || cols == 0) total.max = total.min = 0.0f;

    float *scratch = thread_scratch(threads, cols);
    if (!scratch) return QG_OUT_OF_MEMORY;
#pragma omp parallel num_threads(threads)
    {
        float *buf = this_threads_scratch(scratch, cols);
        int64_t r0, r1;
        this_threads_rows(rows, &r0, &r1);

        if (per_tensor) {
            row_stats local = {-INFINITY, INFINITY, 0.0f, 0};
            for (int64_t r = r0; r < r1; r++) {
                load_row(buf, xb + r * x_stride, x_dtype, cols);
                if (smooth) smooth_row(buf, smooth, cols);
                merge_stats(&local, stats_of(buf, cols));
            }
#pragma omp critical
            merge_stats(&total, local);
#pragma omp barrier
        }
        float tensor_scale = 0.0f, tensor_offset = 0.0f;
        if (per_tensor) dynamic_params(total, symmetric, dst_max, dst_span, &tensor_scale, &tensor_offset);

        int64_t g = 0;
        for (int64_t r = r0; r < r1; r++) {
            load_row(buf, xb + r * x_stride, x_dtype, cols);
            if (smooth) {
                if (group_ends) g = group_of_row(group_ends, groups, r, g);
                smooth_row(buf, smooth + g * cols, cols);
            }
            float s = tensor_scale, o = tensor_offset;
            if (!per_tensor) {
                dynamic_params(stats_of(buf, cols), symmetric, dst_max, dst_span, &s, &o);
                scale[r] = s;
                if (offset) offset[r] = o;
            }
            dynamic_quant_row(buf, cols, s, o, fmt, yb + r * y_stride);
        }
    }
    free(scratch);
    if (per_tensor) {
        float unused_offset;
        dynamic_params(total, symmetric, dst_max, dst_span, &scale[0], offset ? &offset[0] : &unused_offset);
    }
    return QG_OK;
}

/* n parameters of enum qg_in_dtype `dtype` as float32: the table itself when it is float32,
 * else widened into *owned (malloc'd; the caller frees it, NULL otherwise). A NULL table stays
 * NULL; NULL for any other table means out of memory. */
static const float *float32_params(const void *table, int dtype, int64_t n, float **owned) {
    *owned = NULL;
    if (!table || dtype == QG_F32) return (const float *)table;
    *owned = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (*owned) load_row(*owned, table, dtype, n);
    return *owned;
}

/*
 * Affine quantization, y = saturate(x * scale + zero), with per-column or per-row
 * parameters (Quantize, AscendQuantV2, GroupQuant). x: [rows, cols] contiguous. scale, and
 * zero unless NULL, are tables of param_dtype: float32, or float16/bfloat16, widened here
 * once (a caller widening them into new tensors spent 2 us per table on a one-token call).
 *   per_row = 0: parameters vary along cols: scale row g (g from group_ends, else 0) of a
 *                [groups, cols] table, zero NULL, [cols], or one value for every column
 *                (zero_is_scalar: a caller expanding it into a row spent 2 us on a one-token call).
 *   per_row = 1: one scale/zero per row, index r % period.
 */
int qg_affine_quant(const qg_affine_quant_args *a) {
    const int x_dtype = a->x_dtype, per_row = a->per_row, zero_is_scalar = a->zero_is_scalar, threads = a->threads;
    const int64_t rows = a->rows, cols = a->cols, period = a->period, groups = a->groups;
    const int64_t *group_ends = a->group_ends;
    const int64_t scale_n = per_row ? (rows < period ? rows : period) : (group_ends ? groups : 1) * cols,
                  zero_n = per_row ? scale_n : zero_is_scalar ? 1 : cols;
    float *owned_scale, *owned_zero;
    const float *scale = float32_params(a->scale, a->param_dtype, scale_n, &owned_scale),
                *zero = float32_params(a->zero, a->param_dtype, zero_n, &owned_zero);
    const qg_format fmt = {a->out_kind, a->out_lo, a->out_hi};
    const char *xb = (const char *)a->x;
    char *yb = (char *)a->y;
    const int64_t x_stride = cols * in_elem_bytes(x_dtype);
    const int64_t y_stride = out_row_bytes(fmt.kind, cols);
    float *scratch = !scale || (a->zero && !zero) ? NULL : thread_scratch(threads, cols);
    if (!scratch) {
        free(owned_scale);
        free(owned_zero);
        return QG_OUT_OF_MEMORY;
    }
    prefer_huge_pages(yb, rows * y_stride);
#pragma omp parallel num_threads(threads)
    {
        float *buf = this_threads_scratch(scratch, cols);
        int64_t r0, r1;
        this_threads_rows(rows, &r0, &r1);
        int64_t g = 0;
        for (int64_t r = r0; r < r1; r++) {
            load_row(buf, xb + r * x_stride, x_dtype, cols);
            if (per_row) {
                const float s = scale[r % period], z = zero ? zero[r % period] : QG_NO_OFFSET;
                for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * s + z;
            } else {
                if (group_ends) g = group_of_row(group_ends, groups, r, g);
                const float *s = scale + g * cols;
                /* one pass over buf: a multiply, then an add, each rounded (no FMA) */
                if (zero && zero_is_scalar) {
                    const float z = zero[0];
                    for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * s[i] + z;
                } else if (zero)
                    for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * s[i] + zero[i];
                else
                    for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * s[i];
            }
            store_row(yb + r * y_stride, fmt, buf, cols, 1.0f, QG_NO_OFFSET);
        }
    }
    free(scratch);
    free(owned_scale);
    free(owned_zero);
    return QG_OK;
}

/*
 * exp for SwiGLU, vectorizable: libm's expf is a call per element, which keeps the swish
 * loops scalar (about 3x slower). n = rint(x / ln2), r = x - n ln2 in two steps (Cody-Waite;
 * the high part of ln2 has few bits, so n * QG_LN2_HI is exact), a degree-7 polynomial
 * for e^r on |r| <= ln2/2, then times 2^n as two exact powers of two so that results
 * near overflow or in the subnormals round once, as a single scaling would.
 * Plain float32 operations only (no FMA: -ffp-contract=off), so every lane and the
 * scalar tail give the same bits, and tests/reference.py computes the same function
 * with torch's float32 operations. Within 1 ulp of exp (docs/numerics.md); NaN stays
 * NaN, exp(+inf) = inf, exp(-inf) = 0.
 */
#define QG_LN2_HI 0.693359375f
#define QG_LN2_LO -2.12194440e-4f
static inline float qg_expf(float x) {
    /* below -110 the result rounds to 0, above 90 to inf. A NaN becomes -110, which keeps the
     * int cast defined, and takes the select at the end. Written as x86's max and min read
     * (a > b ? a : b), each bound is one instruction; with the NaN test first GCC made the
     * three selects 19 (the swish loop 8% slower). */
    float c = x > -110.0f ? x : -110.0f;
    c = c < 90.0f ? c : 90.0f;
    const float n = rintf(c * 1.44269504088896341f);
    float r = c - n * QG_LN2_HI;
    r = r - n * QG_LN2_LO;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t k = (int32_t)n, k1 = k >> 1, k2 = k - k1;
    const uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    const float e = p * s1 * s2;
    return x != x ? x : e;
}

void qg_expf_row(float *dst, const float *src, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dst[i] = qg_expf(src[i]);
}

static inline float silu(float v) { return v / (1.0f + qg_expf(-v)); }

/* swiglu_mode 1 and 2 (GPT-OSS): gate capped above, linear clamped both ways; NaN passes
 * through both comparisons, as through torch.clamp. */
static inline float clamped_glu(float gate, float linear, float limit, float alpha, float bias) {
    gate = gate > limit ? limit : gate;
    linear = linear < -limit ? -limit : linear;
    linear = linear > limit ? limit : linear;
    return gate / (1.0f + qg_expf(gate * -alpha)) * (linear + bias);
}

/*
 * DequantSwigluQuant. x: [rows, 2h] int32 (dequantized), float16 or bfloat16. Parameter
 * tables are float32 with a row per group; a stride of 0 shares row 0 across groups.
 * Dequant: (x + bias) * weight_scale (* activation_scale) (+ float_bias). swiglu_mode 0/2
 * take halves (activate_left: the gate is the left one), 1 interleaved pairs (gate even).
 * Rows at or past group_ends[groups - 1] get y = 0 and scale = 0. dynamic: symmetric int8
 * per row after out *= quant_scale; static: y = round(out / quant_scale + quant_offset), scale = 0.
 */
int qg_dequant_swiglu_quant(const qg_dequant_swiglu_quant_args *a) {
    const void *x = a->x;
    const int x_dtype = a->x_dtype, activate_left = a->activate_left, swiglu_mode = a->swiglu_mode,
              dynamic = a->dynamic, threads = a->threads;
    const int64_t rows = a->rows, h = a->h, weight_stride = a->weight_stride, quant_stride = a->quant_stride,
                  groups = a->groups;
    const int32_t *bias = a->bias;
    const float *weight_scale = a->weight_scale, *activation_scale = a->activation_scale,
                *float_bias = a->float_bias, *quant_scale = a->quant_scale, *quant_offset = a->quant_offset;
    const float limit = a->clamp_limit, alpha = a->glu_alpha, glu_bias = a->glu_bias;
    const int64_t *group_ends = a->group_ends;
    const qg_format fmt = {a->out_kind, a->out_lo, a->out_hi};
    const float dst_max = a->dst_max, dst_span = a->dst_span;
    char *y = (char *)a->y;
    float *scale = a->scale;
    const int64_t y_stride = out_row_bytes(fmt.kind, h);
    prefer_huge_pages(y, rows * y_stride);
    const int64_t cols = 2 * h;
    const int64_t x_stride = cols * in_elem_bytes(x_dtype);
    const int64_t valid_rows = group_ends[groups - 1] < rows ? group_ends[groups - 1] : rows;
    float *scratch = thread_scratch(threads, cols);
    if (!scratch) return QG_OUT_OF_MEMORY;
#pragma omp parallel num_threads(threads)
    {
        float *buf = this_threads_scratch(scratch, cols);
        int64_t r0, r1;
        this_threads_rows(rows, &r0, &r1);
        int64_t g = 0;
        for (int64_t r = r0; r < r1; r++) {
            char *y_row = y + r * y_stride;
            if (r >= valid_rows) {
                memset(y_row, 0, (size_t)y_stride);
                scale[r] = 0.0f;
                continue;
            }
            g = group_of_row(group_ends, groups, r, g);
            const char *x_row = (const char *)x + r * x_stride;
            const float *ws = weight_scale ? weight_scale + g * weight_stride : NULL;
            const float as = activation_scale ? activation_scale[r] : 1.0f; /* times 1: the same bits */
            const int32_t *xi = (const int32_t *)x_row;
            if (x_dtype == QG_I32 && ws && !bias) {
                /* the common case: the dequant in the pass that widens x (6% of the kernel) */
                for (int64_t i = 0; i < cols; i++) buf[i] = (float)xi[i] * ws[i] * as;
            } else {
                if (bias)
                    for (int64_t i = 0; i < cols; i++) buf[i] = (float)((int64_t)xi[i] + bias[i]);
                else
                    load_row(buf, x_row, x_dtype, cols);
                if (ws)
                    for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] * ws[i] * as;
            }
            if (float_bias)
                for (int64_t i = 0; i < cols; i++) buf[i] = buf[i] + float_bias[i];
            /* in place: iteration i writes buf[i], which no later iteration reads (they read j, h + j, 2j, 2j + 1, j > i) */
            /* omp simd: the compiler cannot prove the in-place loops safe; they are (above) */
            if (swiglu_mode == 1) {
#pragma omp simd
                for (int64_t i = 0; i < h; i++)
                    buf[i] = clamped_glu(buf[2 * i], buf[2 * i + 1], limit, alpha, glu_bias);
            } else {
                const float *gate = activate_left ? buf : buf + h, *up = activate_left ? buf + h : buf;
                if (swiglu_mode == 0) {
#pragma omp simd
                    for (int64_t i = 0; i < h; i++) buf[i] = silu(gate[i]) * up[i];
                } else {
#pragma omp simd
                    for (int64_t i = 0; i < h; i++) buf[i] = clamped_glu(gate[i], up[i], limit, alpha, glu_bias);
                }
            }
            const float *qs = quant_scale ? quant_scale + g * quant_stride : NULL;
            if (dynamic) {
                if (qs)
                    for (int64_t i = 0; i < h; i++) buf[i] = buf[i] * qs[i];
                float s, unused_offset;
                dynamic_params(stats_of(buf, h), 1, dst_max, dst_span, &s, &unused_offset);
                scale[r] = s;
                dynamic_quant_row(buf, h, s, QG_NO_OFFSET, fmt, y_row);
            } else {
                const float *qo = quant_offset ? quant_offset + g * quant_stride : NULL;
                for (int64_t i = 0; i < h; i++) buf[i] = buf[i] / qs[i];
                if (qo)
                    for (int64_t i = 0; i < h; i++) buf[i] = buf[i] + qo[i];
                scale[r] = 0.0f;
                store_row(y_row, fmt, buf, h, 1.0f, QG_NO_OFFSET);
            }
        }
    }
    free(scratch);
    return QG_OK;
}
