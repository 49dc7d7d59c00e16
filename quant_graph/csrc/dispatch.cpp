/*
 * quant_graph's dispatcher fast path: C++ kernels for the common case of every op (the
 * dynamic quant ops, npu_quantize, npu_group_quant, npu_dequant_swiglu_quant), so that a
 * decode-size call costs what an aten op costs.
 *
 * A Python kernel pays about 60 us a call to enter and leave the dispatcher, validate its
 * arguments and fill the C kernel's struct through ctypes: 30x one aten op at [1, 7168].
 * These kernels sit on the BackendSelect key, which every call passes through after
 * autograd and before the backend (also in inference mode, and below the Python key, so
 * FakeTensor, functionalization and TorchDispatchModes never reach them). Each one checks
 * whether the call is in its common case, which holds only for valid arguments: plain CPU
 * tensors, the formats and modes listed at each *_fast_path predicate. Then it allocates the
 * outputs and calls the C kernel itself. Any other call, valid or not, it redispatches
 * unchanged to the op's registered kernels (the Python CPU kernel, the npu or portable
 * kernel), which hold every validation rule and error message: the rules are not copied
 * here, only the predicate of the case.
 *
 * It also holds every op's Autograd kernel (below_autograd), which a Python kernel would
 * make cost 6 us more a call outside inference mode.
 *
 * native.py builds this file against the running torch's headers, loads it with ctypes,
 * hands it the C kernel (qg_dispatch_bind) and the formats it writes, and registers and
 * unregisters the kernels per op namespace (qg_dispatch_register / qg_dispatch_unregister,
 * qg_dispatch_register_autograd).
 */
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/reciprocal.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"

namespace {

using at::Tensor;
using OptionalTensor = std::optional<Tensor>;

/* An output format as a _dtypes.QuantDtype row describes it: the C kernels' enum qg_out_kind,
 * the range values saturate (or clamp) to, and the dtype of the tensor holding them. */
struct Format {
    int32_t kind = -1;
    double lo = 0.0, hi = 0.0;
    at::ScalarType storage = at::kChar;
};

/* The formats an op's fast path writes, by the dtype code naming each: native.py binds the
 * codes of an op rule (_FORMAT_LISTS) whose format a C kernel writes unpacked. */
enum FormatList { DYNAMIC_QUANT_FORMATS = 0, QUANTIZE_MUL_FORMATS = 1, QUANTIZE_DIV_FORMATS = 2, FORMAT_LISTS = 3 };

/* What native.py binds: the C kernels, the int8 format as _dtypes.INT8 describes it and
 * torch_npu's codes naming it, the format lists, and the threading policy of native._threads_for. */
struct Bound {
    int (*dynamic_quant)(const qg_dynamic_quant_args *) = nullptr;
    int (*affine_quant)(const qg_affine_quant_args *) = nullptr;
    int (*dequant_swiglu_quant)(const qg_dequant_swiglu_quant_args *) = nullptr;
    void (*widen)(float *, const void *, int32_t, int64_t) = nullptr;
    Format int8;
    int64_t int8_code = -1, qint8_code = -1;  // torch_npu's dtype codes for torch.int8 and torch.qint8
    std::vector<std::pair<int64_t, Format>> formats[FORMAT_LISTS];
    int64_t bytes_per_thread = 0;
    int64_t grouped_max_h = 0, grouped_h_align = 1;  // npu_dequant_swiglu_quant's group_index limits on H
    bool single_threaded = false;  // a forked child: OpenMP's pool did not survive the fork
};
Bound bound;

/* The format `code` names in `list`, or nullptr: not a format that op's fast path writes. */
const Format *format_of(FormatList list, int64_t code) {
    for (const auto &[listed, format] : bound.formats[list])
        if (listed == code) return &format;
    return nullptr;
}

/* native._threads_for: `bytes` touched, `units` (rows) to split between the threads. */
int threads_for(int64_t bytes, int64_t units) {
    if (bound.single_threaded) return 1;
    const int64_t wanted = std::min(bytes / bound.bytes_per_thread, units);
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), wanted)));
}

int64_t nbytes(const Tensor &t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

/* The keys after BackendSelect; the call is the fast path's only if a plain CPU tensor
 * kernel would serve it next. */
c10::DispatchKeySet after_backend_select(c10::DispatchKeySet ks) {
    return ks & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER, c10::DispatchKey::BackendSelect);
}

bool plain_cpu(const Tensor &t) { return t.device().is_cpu() && t.layout() == at::kStrided && !t.is_quantized(); }

bool float_input(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16 || t == at::kFloat; }

int32_t in_dtype(at::ScalarType t) { return t == at::kHalf ? QG_F16 : t == at::kBFloat16 ? QG_BF16 : QG_F32; }

/* The float tensor `t` contiguous in float32 (a copy unless it is), as the C kernels read parameters,
 * widened by their own loader (aten's conversion costs several times more at this size). */
Tensor float32(const Tensor &t) {
    const Tensor src = t.contiguous();
    if (src.scalar_type() == at::kFloat) return src;
    Tensor dst = at::empty(src.sizes(), src.options().dtype(at::kFloat));
    if (src.numel() > 0)
        bound.widen(dst.mutable_data_ptr<float>(), src.const_data_ptr(), in_dtype(src.scalar_type()), src.numel());
    return dst;
}

/* An int32 or int64 group_index (row ends or row counts) as a contiguous int64 tensor. */
Tensor int64_contiguous(const Tensor &group_index) {
    if (group_index.scalar_type() == at::kLong) return group_index.contiguous();
    const Tensor src = group_index.contiguous();
    Tensor values = at::empty(src.sizes(), src.options().dtype(at::kLong));
    std::copy_n(src.const_data_ptr<int32_t>(), src.numel(), values.mutable_data_ptr<int64_t>());
    return values;
}

/* An output format in a kernel's argument struct. */
template <class Args>
void write_format(Args &a, const Format &format) {
    a.out_kind = format.kind;
    a.out_lo = format.lo;
    a.out_hi = format.hi;
}

/* write_format, and the format's DST_MAX and DST_MAX - DST_MIN for a dynamic scale formula. */
template <class Args>
void write_dynamic_format(Args &a, const Format &format) {
    write_format(a, format);
    a.dst_max = static_cast<float>(format.hi);
    a.dst_span = static_cast<float>(format.hi - format.lo);
}

/* npu_dynamic_quant(_asymmetric)'s common case: input a contiguous, non-empty
 * float16/bfloat16 CPU tensor of rank >= 2; no group_index; dst_type absent (int8) or a
 * code of DYNAMIC_QUANT_FORMATS; dst_type_max 0; per token or per tensor with smooth_scales
 * absent or a 1-D [H] CPU tensor of input's dtype, or per channel with smooth_scales absent
 * or 1-D [M] (M = input.size(-2)). Every rule of check_args holds for such a call. Returns
 * the output format, or nullptr for any other call. */
const Format *dynamic_quant_fast_path(const Tensor &input, const OptionalTensor &smooth_scales,
                                      const OptionalTensor &group_index, std::optional<int64_t> dst_type,
                                      c10::string_view quant_mode, double dst_type_max) {
    const auto dtype = input.scalar_type();
    if (!plain_cpu(input) || (dtype != at::kHalf && dtype != at::kBFloat16) || input.dim() < 2 ||
        input.numel() == 0 || !input.is_contiguous())
        return nullptr;
    if (group_index.has_value() || dst_type_max != 0.0) return nullptr;
    const Format *format = format_of(DYNAMIC_QUANT_FORMATS, dst_type.value_or(bound.int8_code));
    const bool per_channel = quant_mode == "perchannel";
    if (!format || (quant_mode != "pertoken" && quant_mode != "pertensor" && !per_channel)) return nullptr;
    if (smooth_scales.has_value()) {
        const Tensor &smooth = *smooth_scales;
        if (!plain_cpu(smooth) || smooth.scalar_type() != dtype || smooth.dim() != 1 ||
            smooth.size(0) != input.size(per_channel ? -2 : -1))
            return nullptr;
    }
    return format;
}

/* The outputs as the Python kernel allocates them and the C kernel's verdict on filling them;
 * false: the kernel wrote nothing (out of memory). */
bool dynamic_quant(const Tensor &input, const OptionalTensor &smooth_scales, c10::string_view quant_mode,
                   const Format &format, bool symmetric, Tensor &y, Tensor &scale, Tensor &offset) {
    const bool per_tensor = quant_mode == "pertensor", per_channel = quant_mode == "perchannel";
    const int64_t cols = input.size(-1), rows = input.numel() / cols, tokens = input.size(-2);
    // scale and offset: one, one per row, or per channel one per column of each [M, H] slice
    at::DimVector stats_shape(input.sizes().slice(0, input.dim() - (per_channel ? 2 : 1)));
    if (per_channel) stats_shape.push_back(cols);
    if (per_tensor) stats_shape = {1};
    y = at::empty(input.sizes(), input.options().dtype(format.storage));
    scale = at::empty(stats_shape, input.options().dtype(at::kFloat));
    if (!symmetric) offset = at::empty(stats_shape, input.options().dtype(at::kFloat));
    const Tensor smooth = smooth_scales.has_value() ? float32(*smooth_scales) : Tensor();
    qg_dynamic_quant_args a;
    std::memset(&a, 0, sizeof a);
    a.x = input.const_data_ptr();
    a.x_dtype = in_dtype(input.scalar_type());
    a.rows = rows;
    a.cols = cols;
    a.smooth = smooth.defined() ? smooth.const_data_ptr<float>() : nullptr;
    a.symmetric = symmetric;
    a.per_tensor = per_tensor;
    a.per_channel = per_channel;
    a.channel_rows = tokens;
    write_dynamic_format(a, format);
    a.y = y.mutable_data_ptr();
    a.scale = scale.mutable_data_ptr<float>();
    a.offset = symmetric ? nullptr : offset.mutable_data_ptr<float>();
    // the bytes native._dynamic_quant_extents counts for the tensors of this call, and the
    // units native.DYNAMIC_QUANT splits: rows, or per channel the columns
    a.threads = threads_for(nbytes(input) + nbytes(smooth) + nbytes(y) + nbytes(scale) + nbytes(offset),
                            per_channel ? cols : rows);
    return bound.dynamic_quant(&a) == QG_OK;
}

/* y = saturate(x * scale + zero) in `format`, x as [rows, cols], zero undefined or of scale's
 * dtype. Per column: scale a [groups, cols] table (row group from `ends`, else row 0), zero
 * [cols] or, zero_is_scalar, one value; per_row: one scale and zero for every row.
 * False: the kernel wrote nothing (out of memory). */
bool affine_quant(const Tensor &x, int64_t rows, int64_t cols, const Tensor &scale, const Tensor &zero,
                  bool zero_is_scalar, bool per_row, const Tensor &ends, const Format &format, Tensor &y) {
    y = at::empty(x.sizes(), x.options().dtype(format.storage));
    qg_affine_quant_args a;
    std::memset(&a, 0, sizeof a);
    a.x = x.const_data_ptr();
    a.x_dtype = in_dtype(x.scalar_type());
    a.rows = rows;
    a.cols = cols;
    // one parameter dtype for both tables (the kernel widens float16/bfloat16 ones itself)
    TORCH_INTERNAL_ASSERT(!zero.defined() || zero.scalar_type() == scale.scalar_type());
    a.scale = scale.const_data_ptr();
    a.zero = zero.defined() ? zero.const_data_ptr() : nullptr;
    a.zero_is_scalar = zero_is_scalar;
    a.param_dtype = in_dtype(scale.scalar_type());
    a.per_row = per_row;
    a.period = 1;
    a.group_ends = ends.defined() ? ends.const_data_ptr<int64_t>() : nullptr;
    a.groups = ends.defined() ? ends.numel() : 0;
    write_format(a, format);
    a.y = y.mutable_data_ptr();
    // the bytes native._affine_quant_extents counts for the tensors of this call
    a.threads = threads_for(nbytes(x) + nbytes(scale) + nbytes(zero) + nbytes(ends) + nbytes(y), rows);
    return bound.affine_quant(&a) == QG_OK;
}

/* npu_quantize's common cases, both along the last dim of input, a contiguous, non-empty
 * float32/float16/bfloat16 CPU tensor of 1 to 8 dims, into a format of the mode's list
 * (int8, uint8, int32, float8: what a dtype code of the mode names and a C kernel writes):
 *  - div_mode=False (AscendQuantV2), axis in [-1, input.dim()) (not -2): scales 1-D of the
 *    last dim's size or 1, of input's dtype (any float dtype for a float32 input);
 *    zero_points absent or of scales' dtype and shape;
 *  - div_mode=True (Quantize), axis naming the last dim: scales 1-D of its size or 1, float32,
 *    or bfloat16 with a bfloat16 input; no zero_points.
 * Every rule of check_args holds. Returns the output format, or nullptr for any other call. */
const Format *quantize_fast_path(const Tensor &input, const Tensor &scales, const OptionalTensor &zero_points,
                                 int64_t dtype, int64_t axis, bool div_mode) {
    const auto in = input.scalar_type(), sd = scales.scalar_type();
    const int64_t dims = input.dim();
    const Format *format = format_of(div_mode ? QUANTIZE_DIV_FORMATS : QUANTIZE_MUL_FORMATS, dtype);
    if (!format || !plain_cpu(input) || !float_input(in) || dims < 1 || dims > 8 || input.numel() == 0 ||
        !input.is_contiguous())
        return nullptr;
    if (!plain_cpu(scales) || scales.dim() != 1 || (scales.size(0) != input.size(-1) && scales.size(0) != 1))
        return nullptr;
    if (div_mode) {
        const bool float32_or_all_bf16 = sd == at::kFloat || (sd == at::kBFloat16 && in == at::kBFloat16);
        return (axis == -1 || axis == dims - 1) && !zero_points.has_value() && float32_or_all_bf16 ? format : nullptr;
    }
    if (axis < -1 || axis >= dims || !float_input(sd) || (in != at::kFloat && sd != in)) return nullptr;
    if (zero_points.has_value()) {
        const Tensor &zero = *zero_points;
        if (!plain_cpu(zero) || zero.scalar_type() != sd || zero.sizes() != scales.sizes()) return nullptr;
    }
    return format;
}

/* 1 / t in float32, flat: the Python kernel's 1.0 / scales.float() (torch.quantize_per_channel's
 * float32 reciprocal; aten's vectorized loop is an IEEE division too, the same bits). */
Tensor float32_reciprocal(const Tensor &t) { return at::reciprocal(float32(t).reshape({-1})); }

/* npu_group_quant's common case: int8 out (dst_dtype absent, int8 or qint8); x a contiguous,
 * non-empty 2-D [S, H] float CPU tensor; scale a 2-D [G, H] float CPU tensor, G >= 1;
 * group_index int32/int64 [G] of valid cumulative row ends (non-decreasing, from >= 0, the
 * last S); offset absent or one element of scale's dtype. Every rule of check_args and
 * check_ends holds. `ends` receives group_index as int64. */
bool group_quant_fast_path(const Tensor &x, const Tensor &scale, const Tensor &group_index,
                           const OptionalTensor &offset, std::optional<at::ScalarType> dst_dtype, Tensor &ends) {
    if (dst_dtype.has_value() && *dst_dtype != at::kChar && *dst_dtype != at::kQInt8) return false;
    if (!plain_cpu(x) || !float_input(x.scalar_type()) || x.dim() != 2 || x.numel() == 0 || !x.is_contiguous())
        return false;
    if (!plain_cpu(scale) || !float_input(scale.scalar_type()) || scale.dim() != 2 || scale.size(0) == 0 ||
        scale.size(1) != x.size(1))
        return false;
    const auto gd = group_index.scalar_type();
    if (!plain_cpu(group_index) || (gd != at::kInt && gd != at::kLong) || group_index.dim() != 1 ||
        group_index.size(0) != scale.size(0))
        return false;
    if (offset.has_value() &&
        (!plain_cpu(*offset) || offset->scalar_type() != scale.scalar_type() || offset->numel() != 1))
        return false;
    ends = int64_contiguous(group_index);
    const int64_t *e = ends.const_data_ptr<int64_t>(), groups = ends.numel();
    if (e[0] < 0 || e[groups - 1] != x.size(0)) return false;
    for (int64_t g = 1; g < groups; g++)
        if (e[g] < e[g - 1]) return false;
    return true;
}

/* A float32 parameter table of rows of `width` as the dequant_swiglu_quant kernel takes it:
 * `width` entries (one row shared: stride 0), or [groups, width] with groups rows (stride
 * width; one row: stride 0); the Python rule _check_rows_of. Undefined if `t` is neither. */
bool swiglu_table(const OptionalTensor &t, int64_t width, int64_t groups, bool grouped, Tensor &table,
                  int64_t &stride) {
    stride = 0;
    if (!t.has_value()) return true;
    if (!plain_cpu(*t) || !float_input(t->scalar_type())) return false;
    if (t->dim() == 1) {
        if (t->size(0) != width || (grouped && groups != 1)) return false;
    } else if (t->dim() != 2 || t->size(1) != width || t->size(0) != (grouped ? groups : 1)) {
        return false;
    }
    table = float32(*t);
    stride = table.dim() == 2 && table.size(0) > 1 ? width : 0;
    return true;
}

/* npu_dequant_swiglu_quant's common case: x a contiguous, non-empty 2-D [T, 2H] int32 CPU
 * tensor split along its last dim (activate_dim absent or -1 / 1); no bias; float32
 * weight_scale [2H] or [G, 2H]; activation_scale absent or float32 [T] or [T, 1];
 * dynamic quant (quant_scale absent or [H] / [G, H]) or static quant without group_index
 * (quant_scale and quant_offset [H] or [1, H]); int8 out, rint; finite GLU parameters;
 * group_index absent or int32/int64 [G] counts, each >= 0, summing to at most T, with H
 * within GroupQuant's limits. Every rule of check_args and ends_from_counts holds.
 * `ends` receives the cumulative row ends ([T] without group_index). */
struct SwigluCall {
    Tensor weights, quants, offsets, act, ends;
    int64_t weight_stride = 0, quant_stride = 0;
};

bool dequant_swiglu_quant_fast_path(const Tensor &x, const OptionalTensor &weight_scale,
                                    const OptionalTensor &activation_scale, const OptionalTensor &bias,
                                    const OptionalTensor &quant_scale, const OptionalTensor &quant_offset,
                                    const OptionalTensor &group_index, int64_t quant_mode,
                                    std::optional<int64_t> dst_type, std::optional<int64_t> round_mode,
                                    std::optional<int64_t> activate_dim, int64_t swiglu_mode, double clamp_limit,
                                    double glu_alpha, double glu_bias, SwigluCall &call) {
    if (!plain_cpu(x) || x.scalar_type() != at::kInt || x.dim() != 2 || x.numel() == 0 || !x.is_contiguous())
        return false;
    const int64_t tokens = x.size(0), width = x.size(1), h = width / 2;
    if (width % 2 != 0 || (activate_dim.has_value() && *activate_dim != -1 && *activate_dim != 1)) return false;
    if (bias.has_value() || (quant_mode != 0 && quant_mode != 1) ||
        (dst_type.has_value() && *dst_type != bound.int8_code) || (round_mode.has_value() && *round_mode != 0) ||
        swiglu_mode < 0 || swiglu_mode > 2)
        return false;
    if (!std::isfinite(clamp_limit) || clamp_limit <= 0 || !std::isfinite(glu_alpha) || !std::isfinite(glu_bias))
        return false;
    const bool grouped = group_index.has_value();
    int64_t groups = 1;
    if (grouped) {
        const Tensor &counts = *group_index;
        const auto cd = counts.scalar_type();
        if (!plain_cpu(counts) || (cd != at::kInt && cd != at::kLong) || counts.dim() != 1 || counts.size(0) == 0 ||
            quant_mode != 1 || h > bound.grouped_max_h || h % bound.grouped_h_align != 0)
            return false;
        groups = counts.size(0);
        const Tensor c = int64_contiguous(counts);
        call.ends = at::empty({groups}, x.options().dtype(at::kLong));
        const int64_t *in = c.const_data_ptr<int64_t>();
        int64_t *ends = call.ends.mutable_data_ptr<int64_t>(), sum = 0;
        for (int64_t g = 0; g < groups; g++) {
            if (in[g] < 0 || in[g] > tokens - sum) return false;
            ends[g] = sum += in[g];
        }
    } else {
        call.ends = at::empty({1}, x.options().dtype(at::kLong));
        call.ends.mutable_data_ptr<int64_t>()[0] = tokens;
    }
    if (!weight_scale.has_value() || weight_scale->scalar_type() != at::kFloat ||
        !swiglu_table(weight_scale, width, groups, grouped, call.weights, call.weight_stride))
        return false;
    if (activation_scale.has_value()) {
        const Tensor &act = *activation_scale;
        if (!plain_cpu(act) || act.scalar_type() != at::kFloat || act.size(0) != tokens ||
            !(act.dim() == 1 || (act.dim() == 2 && act.size(1) == 1)))
            return false;
        call.act = act.contiguous();
    }
    if (quant_mode == 0 && (!quant_scale.has_value() || grouped)) return false;
    if (quant_offset.has_value() && quant_mode != 0) return false;
    int64_t unused_stride;
    return swiglu_table(quant_scale, h, groups, grouped, call.quants, call.quant_stride) &&
           swiglu_table(quant_offset, h, groups, grouped, call.offsets, unused_stride);
}

bool dequant_swiglu_quant(const Tensor &x, const SwigluCall &call, bool activate_left, bool dynamic,
                          int64_t swiglu_mode, double clamp_limit, double glu_alpha, double glu_bias, Tensor &y,
                          Tensor &scale) {
    const int64_t tokens = x.size(0), h = x.size(1) / 2, groups = call.ends.numel();
    y = at::empty({tokens, h}, x.options().dtype(at::kChar));
    scale = at::empty({tokens}, x.options().dtype(at::kFloat));
    qg_dequant_swiglu_quant_args a;
    std::memset(&a, 0, sizeof a);
    a.x = x.const_data_ptr();
    a.x_dtype = QG_I32;
    a.rows = tokens;
    a.h = h;
    a.weight_scale = call.weights.const_data_ptr<float>();
    a.weight_stride = call.weight_stride;
    a.activation_scale = call.act.defined() ? call.act.const_data_ptr<float>() : nullptr;
    a.quant_scale = call.quants.defined() ? call.quants.const_data_ptr<float>() : nullptr;
    a.quant_stride = call.quant_stride;
    a.quant_offset = call.offsets.defined() ? call.offsets.const_data_ptr<float>() : nullptr;
    a.group_ends = call.ends.const_data_ptr<int64_t>();
    a.groups = groups;
    a.activate_left = activate_left;
    a.swiglu_mode = static_cast<int32_t>(swiglu_mode);
    a.clamp_limit = static_cast<float>(clamp_limit);
    a.glu_alpha = static_cast<float>(glu_alpha);
    a.glu_bias = static_cast<float>(glu_bias);
    a.dynamic = dynamic;
    write_dynamic_format(a, bound.int8);
    a.y = y.mutable_data_ptr();
    a.scale = scale.mutable_data_ptr<float>();
    // the bytes native._dequant_swiglu_quant_extents counts for the tensors of this call
    const int64_t last_group = groups - 1, quant_table = 4 * (last_group * a.quant_stride + h);
    a.threads = threads_for(nbytes(x) + 4 * (last_group * a.weight_stride + 2 * h) + nbytes(call.act) +
                                (call.quants.defined() ? quant_table : 0) + (call.offsets.defined() ? quant_table : 0) +
                                nbytes(call.ends) + nbytes(y) + nbytes(scale),
                            tokens);
    return bound.dequant_swiglu_quant(&a) == QG_OK;
}

template <class Signature>
c10::TypedOperatorHandle<Signature> op_handle(const std::string &ns, const char *name) {
    return c10::Dispatcher::singleton().findSchemaOrThrow((ns + "::" + name).c_str(), "").typed<Signature>();
}

using SymmetricSignature = std::tuple<Tensor, Tensor>(const Tensor &, const OptionalTensor &, const OptionalTensor &,
                                                      std::optional<int64_t>, c10::string_view, double);
using AsymmetricSignature = std::tuple<Tensor, Tensor, Tensor>(const Tensor &, const OptionalTensor &,
                                                               const OptionalTensor &, std::optional<int64_t>,
                                                               c10::string_view, double);
using QuantizeSignature = Tensor(const Tensor &, const Tensor &, const OptionalTensor &, int64_t, int64_t, bool);
using GroupQuantSignature = Tensor(const Tensor &, const Tensor &, const Tensor &, const OptionalTensor &,
                                   std::optional<at::ScalarType>);
using DequantSwigluQuantSignature = std::tuple<Tensor, Tensor>(
    const Tensor &, const OptionalTensor &, const OptionalTensor &, const OptionalTensor &, const OptionalTensor &,
    const OptionalTensor &, const OptionalTensor &, bool, int64_t, std::optional<int64_t>, std::optional<int64_t>,
    std::optional<int64_t>, int64_t, double, double, double);

/* One namespace's kernels (quant_graph, and npu where quant_graph defines it); NS tells the
 * two instantiations apart, so each redispatches to its own op. */
template <int NS>
struct Kernels {
    static std::string ns;

    static std::tuple<Tensor, Tensor> npu_dynamic_quant(c10::DispatchKeySet ks, const Tensor &input,
                                                        const OptionalTensor &smooth_scales,
                                                        const OptionalTensor &group_index,
                                                        std::optional<int64_t> dst_type, c10::string_view quant_mode,
                                                        double dst_type_max) {
        const auto rest = after_backend_select(ks);
        const Format *format = rest.highestPriorityTypeId() == c10::DispatchKey::CPU
                                   ? dynamic_quant_fast_path(input, smooth_scales, group_index, dst_type, quant_mode,
                                                             dst_type_max)
                                   : nullptr;
        if (format) {
            Tensor y, scale, unused;
            if (dynamic_quant(input, smooth_scales, quant_mode, *format, true, y, scale, unused))
                return {y, scale};
        }
        static const auto op = op_handle<SymmetricSignature>(ns, "npu_dynamic_quant");
        return op.redispatch(rest, input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max);
    }

    static std::tuple<Tensor, Tensor, Tensor> npu_dynamic_quant_asymmetric(
        c10::DispatchKeySet ks, const Tensor &input, const OptionalTensor &smooth_scales,
        const OptionalTensor &group_index, std::optional<int64_t> dst_type, c10::string_view quant_mode,
        double dst_type_max) {
        const auto rest = after_backend_select(ks);
        const Format *format = rest.highestPriorityTypeId() == c10::DispatchKey::CPU
                                   ? dynamic_quant_fast_path(input, smooth_scales, group_index, dst_type, quant_mode,
                                                             dst_type_max)
                                   : nullptr;
        if (format) {
            Tensor y, scale, offset;
            if (dynamic_quant(input, smooth_scales, quant_mode, *format, false, y, scale, offset))
                return {y, scale, offset};
        }
        static const auto op = op_handle<AsymmetricSignature>(ns, "npu_dynamic_quant_asymmetric");
        return op.redispatch(rest, input, smooth_scales, group_index, dst_type, quant_mode, dst_type_max);
    }

    static Tensor npu_quantize(c10::DispatchKeySet ks, const Tensor &input, const Tensor &scales,
                               const OptionalTensor &zero_points, int64_t dtype, int64_t axis, bool div_mode) {
        const auto rest = after_backend_select(ks);
        const Format *format = rest.highestPriorityTypeId() == c10::DispatchKey::CPU
                                   ? quantize_fast_path(input, scales, zero_points, dtype, axis, div_mode)
                                   : nullptr;
        if (format) {
            const int64_t cols = input.size(-1);
            // div_mode=True multiplies by the float32 reciprocal, as the Python kernel does;
            // div_mode=False passes the parameters as they are (zero_points share scales' dtype
            // and shape). One scale (per tensor) is the kernel's per-row mode with one period:
            // no [cols] row of copies to fill.
            const Tensor scale = div_mode ? float32_reciprocal(scales) : scales.contiguous();
            const Tensor zero = zero_points.has_value() ? zero_points->contiguous() : Tensor();
            Tensor y;
            if (affine_quant(input, input.numel() / cols, cols, scale, zero, false, scales.numel() == 1, Tensor(),
                             *format, y))
                return y;
        }
        static const auto op = op_handle<QuantizeSignature>(ns, "npu_quantize");
        return op.redispatch(rest, input, scales, zero_points, dtype, axis, div_mode);
    }

    static Tensor npu_group_quant(c10::DispatchKeySet ks, const Tensor &x, const Tensor &scale,
                                  const Tensor &group_index, const OptionalTensor &offset,
                                  std::optional<at::ScalarType> dst_dtype) {
        const auto rest = after_backend_select(ks);
        Tensor ends;
        if (rest.highestPriorityTypeId() == c10::DispatchKey::CPU &&
            group_quant_fast_path(x, scale, group_index, offset, dst_dtype, ends)) {
            const Tensor zero = offset.has_value() ? float32(*offset) : Tensor();
            Tensor y;
            if (affine_quant(x, x.size(0), x.size(1), float32(scale), zero, true, false, ends, bound.int8, y))
                return y;
        }
        static const auto op = op_handle<GroupQuantSignature>(ns, "npu_group_quant");
        return op.redispatch(rest, x, scale, group_index, offset, dst_dtype);
    }

    static std::tuple<Tensor, Tensor> npu_dequant_swiglu_quant(
        c10::DispatchKeySet ks, const Tensor &x, const OptionalTensor &weight_scale,
        const OptionalTensor &activation_scale, const OptionalTensor &bias, const OptionalTensor &quant_scale,
        const OptionalTensor &quant_offset, const OptionalTensor &group_index, bool activate_left, int64_t quant_mode,
        std::optional<int64_t> dst_type, std::optional<int64_t> round_mode, std::optional<int64_t> activate_dim,
        int64_t swiglu_mode, double clamp_limit, double glu_alpha, double glu_bias) {
        const auto rest = after_backend_select(ks);
        SwigluCall call;
        if (rest.highestPriorityTypeId() == c10::DispatchKey::CPU &&
            dequant_swiglu_quant_fast_path(x, weight_scale, activation_scale, bias, quant_scale, quant_offset,
                                           group_index, quant_mode, dst_type, round_mode, activate_dim, swiglu_mode,
                                           clamp_limit, glu_alpha, glu_bias, call)) {
            Tensor y, scale;
            if (dequant_swiglu_quant(x, call, activate_left, quant_mode == 1, swiglu_mode, clamp_limit, glu_alpha,
                                     glu_bias, y, scale))
                return {y, scale};
        }
        static const auto op = op_handle<DequantSwigluQuantSignature>(ns, "npu_dequant_swiglu_quant");
        return op.redispatch(rest, x, weight_scale, activation_scale, bias, quant_scale, quant_offset, group_index,
                             activate_left, quant_mode, dst_type, round_mode, activate_dim, swiglu_mode, clamp_limit,
                             glu_alpha, glu_bias);
    }

    static std::unique_ptr<torch::Library> registered(const std::string &namespace_) {
        ns = namespace_;
        auto lib = std::make_unique<torch::Library>(torch::Library::IMPL, ns, c10::DispatchKey::BackendSelect,
                                                    __FILE__, __LINE__);
        lib->impl("npu_dynamic_quant", TORCH_FN(npu_dynamic_quant));
        lib->impl("npu_dynamic_quant_asymmetric", TORCH_FN(npu_dynamic_quant_asymmetric));
        lib->impl("npu_quantize", TORCH_FN(npu_quantize));
        lib->impl("npu_group_quant", TORCH_FN(npu_group_quant));
        lib->impl("npu_dequant_swiglu_quant", TORCH_FN(npu_dequant_swiglu_quant));
        return lib;
    }
};
template <int NS>
std::string Kernels<NS>::ns;

/* The Autograd kernel of a non-differentiable op, for every quant_graph op: PyTorch's
 * pattern (AutoDispatchBelowADInplaceOrView, then the op again), which opcheck checks for.
 * Outputs never require grad; nothing pretends to be differentiable. */
void below_autograd(const c10::OperatorHandle &op, c10::DispatchKeySet ks, torch::jit::Stack *stack) {
    c10::impl::ExcludeDispatchKeyGuard guard(c10::autograd_dispatch_keyset_with_ADInplaceOrView);
    op.redispatchBoxed(ks & c10::after_ADInplaceOrView_keyset, stack);
}

std::vector<std::unique_ptr<torch::Library>> registrations, autograd_registrations;

void copy_message(const std::exception &err, char *message, int size) {
    if (size > 0) std::snprintf(message, static_cast<size_t>(size), "%s", err.what());
}

}  // namespace

extern "C" {

void qg_dispatch_bind(int (*dynamic_quant)(const qg_dynamic_quant_args *),
                      int (*affine_quant)(const qg_affine_quant_args *),
                      int (*dequant_swiglu_quant)(const qg_dequant_swiglu_quant_args *),
                      void (*widen)(float *, const void *, int32_t, int64_t), int32_t int8_kind, double int8_lo,
                      double int8_hi, int64_t int8_code, int64_t qint8_code, int64_t grouped_max_h,
                      int64_t grouped_h_align, int64_t bytes_per_thread) {
    bound.dynamic_quant = dynamic_quant;
    bound.affine_quant = affine_quant;
    bound.dequant_swiglu_quant = dequant_swiglu_quant;
    bound.widen = widen;
    bound.int8 = Format{int8_kind, int8_lo, int8_hi, at::kChar};
    for (auto &list : bound.formats) list.clear();
    bound.int8_code = int8_code;
    bound.qint8_code = qint8_code;
    bound.grouped_max_h = grouped_max_h;
    bound.grouped_h_align = grouped_h_align;
    bound.bytes_per_thread = bytes_per_thread;
}

/* Adds the format `code` names to list `list` (enum FormatList): enum qg_out_kind `kind`, its
 * range, and c10::ScalarType `storage`. After qg_dispatch_bind, which empties the lists. */
void qg_dispatch_bind_format(int32_t list, int64_t code, int32_t kind, double lo, double hi, int32_t storage) {
    bound.formats[list].emplace_back(code, Format{kind, lo, hi, static_cast<at::ScalarType>(storage)});
}

void qg_dispatch_single_threaded(void) { bound.single_threaded = true; }

/* The threads a call touching `bytes` bytes and splitting `units` runs on (native._threads_for). */
int qg_dispatch_threads_for(int64_t bytes, int64_t units) { return threads_for(bytes, units); }

/* Registers the kernels for the ops of `namespace_` (slot 0: quant_graph, 1: npu); 0 on
 * success, else -1 with the reason in `message`. */
int qg_dispatch_register(int slot, const char *namespace_, char *message, int size) {
    try {
        registrations.push_back(slot == 0 ? Kernels<0>::registered(namespace_) : Kernels<1>::registered(namespace_));
        return 0;
    } catch (const std::exception &err) {
        copy_message(err, message, size);
        return -1;
    }
}

void qg_dispatch_unregister(void) { registrations.clear(); }

/* Registers below_autograd as the Autograd kernel of `namespace_::name`, for as long as
 * the process lives; 0 on success, else -1 with the reason in `message`. */
int qg_dispatch_register_autograd(const char *namespace_, const char *name, char *message, int size) {
    try {
        autograd_registrations.push_back(std::make_unique<torch::Library>(
            torch::Library::IMPL, namespace_, c10::DispatchKey::Autograd, __FILE__, __LINE__));
        autograd_registrations.back()->impl(name, torch::CppFunction::makeFromBoxedFunction<&below_autograd>());
        return 0;
    } catch (const std::exception &err) {
        copy_message(err, message, size);
        return -1;
    }
}

}  // extern "C"
