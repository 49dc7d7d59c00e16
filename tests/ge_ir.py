"""TorchAir's REG_OP definitions, parsed from the docstrings of its generated raw ops."""

import inspect
import re
from dataclasses import dataclass, field

_ENTRY = re.compile(r"\.(INPUT|OPTIONAL_INPUT|DYNAMIC_INPUT|OUTPUT|DYNAMIC_OUTPUT|ATTR|REQUIRED_ATTR)\((.*)\)\s*$")


@dataclass
class IrDef:
    op_type: str
    inputs: list = field(default_factory=list)  # (name, optional, allowed dtype names)
    outputs: list = field(default_factory=list)  # (name, allowed dtype names)
    attrs: dict = field(default_factory=dict)  # name -> required


def parse_reg_op(op_type):
    from torchair._ge_concrete_graph import ge_apis

    ir = IrDef(op_type)
    doc = getattr(ge_apis, op_type).__doc__
    assert doc and f"REG_OP({op_type})" in doc, f"no REG_OP docstring for {op_type}"
    for line in doc.replace("\\n", "\n").splitlines():
        match = _ENTRY.search(line.strip())
        if not match:
            continue
        kind, body = match.groups()
        name = re.split(r"[,\s]", body, maxsplit=1)[0]
        dtypes = set(re.findall(r"DT_\w+", body))
        if kind in ("INPUT", "OPTIONAL_INPUT", "DYNAMIC_INPUT"):
            ir.inputs.append((name, kind == "OPTIONAL_INPUT", dtypes))
        elif kind in ("OUTPUT", "DYNAMIC_OUTPUT"):
            ir.outputs.append((name, dtypes))
        else:
            ir.attrs[name] = kind == "REQUIRED_ATTR"
    # Some REG_OP texts lag their generated function (DynamicQuantV2's lists dst_type only,
    # while the function and the CANN doc also take is_symmetrical, quant_mode, dst_type_max):
    # the function's keyword-only parameters are attrs it writes too.
    for param in inspect.signature(getattr(ge_apis, op_type)).parameters.values():
        if param.kind == param.KEYWORD_ONLY and param.name not in ("dependencies", "node_name"):
            ir.attrs.setdefault(param.name, False)
    # A function built on ge_op also declares an IrDef, whose dtype lists can be longer than
    # its text's (DynamicQuant's text leaves out the DT_INT4 y its IrDef and CANN's proto list).
    source = inspect.getsource(getattr(ge_apis, op_type))
    declared = re.findall(r'\.(input|optional_input|output)\("(\w+)", "([^"]*)"', source)
    for kind, name, dtypes in declared:
        for entry in ir.outputs if kind == "output" else ir.inputs:
            if entry[0] == name:
                entry[-1].update(re.findall(r"DT_\w+", dtypes))
    return ir


# GE's float32 type is DT_FLOAT in both spellings; the REG_OP texts say DT_FLOAT or DT_FLOAT32
_ALIASES = {"DT_FLOAT32": "DT_FLOAT", "DT_BFLOAT16": "DT_BF16"}


def conformance_errors(node, ir):
    """Where a summarised GE node breaks its operator's REG_OP definition."""
    errors = []
    ir_names = [name for name, _, _ in ir.inputs]
    names = [t.name for t in node.inputs]
    positions = [ir_names.index(n) if n in ir_names else -1 for n in names]
    if -1 in positions:
        errors.append(f"unknown inputs {[n for n, p in zip(names, positions, strict=True) if p < 0]}")
    elif positions != sorted(positions):
        errors.append(f"inputs out of order: {names} vs {ir_names}")
    present = {t.name: t for t in node.inputs if t.source is not None}
    for name, optional, dtypes in ir.inputs:
        if not optional and name not in present:
            errors.append(f"required input {name} missing")
        if name in present:
            dtype = _ALIASES.get(present[name].dtype, present[name].dtype)
            allowed = {_ALIASES.get(d, d) for d in dtypes}
            if dtype not in allowed:
                errors.append(f"input {name} is {dtype}, REG_OP allows {sorted(allowed)}")
    for key in node.attrs:
        if key not in ir.attrs:
            errors.append(f"unknown attr {key}")
    for key, required in ir.attrs.items():
        if required and key not in node.attrs:
            errors.append(f"required attr {key} missing")
    for out, (name, dtypes) in zip(node.outputs, ir.outputs, strict=False):
        allowed = {_ALIASES.get(d, d) for d in dtypes}
        if out.name != name:
            errors.append(f"output {out.name} where REG_OP has {name}")
        elif out.dtype != "?" and _ALIASES.get(out.dtype, out.dtype) not in allowed:
            errors.append(f"output {name} is {out.dtype}, REG_OP allows {sorted(allowed)}")
    return errors
