/*
 * The C kernels' interface, shared by kernels.c (which implements it) and dispatch.cpp
 * (the C++ dispatcher kernels that call it): the dtype and format codes, the argument
 * structs and the entry points. native.py mirrors the structs in ctypes and checks the
 * mirror against qg_abi_layout().
 */
#ifndef QUANT_GRAPH_KERNELS_H
#define QUANT_GRAPH_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum qg_in_dtype { QG_F16 = 0, QG_BF16 = 1, QG_F32 = 2, QG_I32 = 3 };
enum qg_out_kind {
    QG_OUT_INT8 = 0, QG_OUT_INT4 = 1, QG_OUT_UINT8 = 2, QG_OUT_INT32 = 3, QG_OUT_FLOAT8_E4M3FN = 4, QG_OUT_FLOAT8_E5M2 = 5
};

/* What a kernel returns: QG_OUT_OF_MEMORY when its scratch memory could not be allocated,
 * before it has written anything (native.py raises MemoryError; dispatch.cpp hands such a
 * call to the Python kernel, which retries it and raises). */
enum qg_status { QG_OK = 0, QG_OUT_OF_MEMORY = 1 };

/* The kernels' argument structs, each declared once: X(type, name) per field. */
#define QG_DYNAMIC_QUANT_ARGS(X)                                                                        \
    X(const void *, x) X(int32_t, x_dtype) X(int64_t, rows) X(int64_t, cols) X(const float *, smooth) \
    X(const int64_t *, group_ends) X(int64_t, groups) X(int32_t, symmetric) X(int32_t, per_tensor)    \
    X(int32_t, per_channel) X(int64_t, channel_rows) X(int32_t, out_kind) X(double, out_lo)          \
    X(double, out_hi) X(float, dst_max) X(float, dst_span) X(void *, y) X(float *, scale)            \
    X(float *, offset) X(int32_t, threads)
#define QG_AFFINE_QUANT_ARGS(X)                                                                         \
    X(const void *, x) X(int32_t, x_dtype) X(int64_t, rows) X(int64_t, cols) X(const void *, scale)   \
    X(const void *, zero) X(int32_t, zero_is_scalar) X(int32_t, param_dtype) X(int32_t, per_row)     \
    X(int64_t, period)                                                                                \
    X(const int64_t *, group_ends) X(int64_t, groups) X(int32_t, out_kind) X(double, out_lo)          \
    X(double, out_hi) X(void *, y) X(int32_t, threads)
#define QG_DEQUANT_SWIGLU_QUANT_ARGS(X)                                                                 \
    X(const void *, x) X(int32_t, x_dtype) X(int64_t, rows) X(int64_t, h) X(const int32_t *, bias)    \
    X(const float *, weight_scale) X(int64_t, weight_stride) X(const float *, activation_scale)        \
    X(const float *, float_bias) X(const float *, quant_scale) X(int64_t, quant_stride)               \
    X(const float *, quant_offset) X(const int64_t *, group_ends) X(int64_t, groups)                  \
    X(int32_t, activate_left) X(int32_t, swiglu_mode) X(float, clamp_limit) X(float, glu_alpha)       \
    X(float, glu_bias) X(int32_t, dynamic) X(int32_t, out_kind) X(double, out_lo) X(double, out_hi)   \
    X(float, dst_max) X(float, dst_span) X(void *, y) X(float *, scale) X(int32_t, threads)

#define QG_DECLARE(type, name) type name;
typedef struct { QG_DYNAMIC_QUANT_ARGS(QG_DECLARE) } qg_dynamic_quant_args;
typedef struct { QG_AFFINE_QUANT_ARGS(QG_DECLARE) } qg_affine_quant_args;
typedef struct { QG_DEQUANT_SWIGLU_QUANT_ARGS(QG_DECLARE) } qg_dequant_swiglu_quant_args;

int qg_abi_layout(char *buf, int size);
/* dst[i] = src[i] widened to float32, src of enum qg_in_dtype `dtype`: the kernels' own row
 * loader, for callers that hand them float32 parameters. */
void qg_widen(float *dst, const void *src, int32_t dtype, int64_t n);
/* dst[i] = exp(src[i]) as the SwiGLU kernels compute it: lets the tests hold that function to
 * its torch formula (tests/reference.py's kernel_expf) bit for bit, edges included. */
void qg_expf_row(float *dst, const float *src, int64_t n);
int qg_dynamic_quant(const qg_dynamic_quant_args *a);
int qg_affine_quant(const qg_affine_quant_args *a);
int qg_dequant_swiglu_quant(const qg_dequant_swiglu_quant_args *a);

#ifdef __cplusplus
}
#endif

#endif
