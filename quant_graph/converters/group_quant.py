"""npu_group_quant -> GE GroupQuant."""

from __future__ import annotations

from torchair._ge_concrete_graph import ge_apis as ge

from .._dtypes import INT4, quant_dtype
from ._ge import as_packed_int32, converter, ge_dtype, set_output_dtype


# TorchAir's own converter for torch.ops.npu.npu_group_quant defaults dst_dtype to uint8
# (DT_UINT8), where torch_npu's meta, op-plugin and GroupQuant's REG_OP say int8: on an Ascend
# host this converter replaces it.
@converter("npu_group_quant", replaces_torchairs=True)
def convert_npu_group_quant(x, scale, group_index, offset=None, dst_dtype=None, meta_outputs=None):
    qd = quant_dtype(dst_dtype)
    y = ge.GroupQuant(x, scale, group_index, offset, dst_type=ge_dtype(qd))
    set_output_dtype(y, qd)
    return as_packed_int32(y, x.rank) if qd is INT4 else y
