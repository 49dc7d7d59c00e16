"""npu_dynamic_quant(_asymmetric) -> GE DynamicQuant / DynamicQuantV2, as TorchAir lowers
torch_npu's ops: plain per-token symmetric quant with dst_type_max 0 to ``DynamicQuant``
(the symmetric kernel A2/A3 run: aclnnDynamicQuantV2 itself sends symmetric calls there),
every other mode to ``DynamicQuantV2`` with is_symmetrical, quant_mode and dst_type_max.
docs/contracts.md gives the reasoning."""

from __future__ import annotations

from torchair._ge_concrete_graph import ge_apis as ge

from .._dtypes import INT4, quant_dtype, resolve_code
from ._ge import as_packed_int32, converter, ge_dtype, set_output_dtype


def lowers_to_v1(symmetric: bool, quant_mode: str, dst_type_max: float) -> bool:
    return symmetric and quant_mode == "pertoken" and dst_type_max == 0.0


def _lower(op, x, smooth_scales, group_index, dst_type, quant_mode, dst_type_max, *, symmetric):
    qd = quant_dtype(resolve_code(op, "dst_type", dst_type))
    if lowers_to_v1(symmetric, quant_mode, dst_type_max):
        y, scale = ge.DynamicQuant(x, smooth_scales, group_index, dst_type=ge_dtype(qd))
        offset = None
    else:
        y, scale, offset = ge.DynamicQuantV2(x, smooth_scales, group_index, dst_type=ge_dtype(qd),
                                             is_symmetrical=symmetric, quant_mode=quant_mode,
                                             dst_type_max=dst_type_max)
    set_output_dtype(y, qd)
    return (as_packed_int32(y, x.rank) if qd is INT4 else y), scale, offset


@converter("npu_dynamic_quant_asymmetric")
def convert_npu_dynamic_quant_asymmetric(input, smooth_scales=None, group_index=None, dst_type=None,
                                         quant_mode="pertoken", dst_type_max=0.0, meta_outputs=None):
    return _lower("npu_dynamic_quant_asymmetric", input, smooth_scales, group_index, dst_type, quant_mode,
                  dst_type_max, symmetric=False)


@converter("npu_dynamic_quant")
def convert_npu_dynamic_quant(input, smooth_scales=None, group_index=None, dst_type=None, quant_mode="pertoken",
                              dst_type_max=0.0, meta_outputs=None):
    y, scale, _ = _lower("npu_dynamic_quant", input, smooth_scales, group_index, dst_type, quant_mode,
                         dst_type_max, symmetric=True)
    return y, scale
