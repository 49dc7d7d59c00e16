"""The package's structure as promised: one registry of operators, kernels chosen by
dispatch key, a typed C ABI, the GE layer inside the package, no import cycles."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import quant_graph as qg
from quant_graph import converters, native
from quant_graph._registry import OPS

PACKAGE = Path(qg.__file__).parent
REPO = PACKAGE.parent


def test_every_op_of_the_namespace_is_registered_with_all_its_parts():
    defined = {n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("quant_graph::")}
    assert defined == set(OPS)
    for name, op in OPS.items():
        assert getattr(qg, name) is op.public and op.public.__name__ == name
        assert name in qg.__all__
        assert op.ge_types and op.cpu_kernel is not None
        assert (PACKAGE / "ops" / f"{op.module}.py").is_file()
        assert (PACKAGE / "converters" / f"{op.module}.py").is_file(), "its converter has its op module's name"
        for key in ("CompositeExplicitAutograd", "PrivateUse1", "Meta"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"quant_graph::{name}", key), (name, key)


def _has_cpu_kernel(name):
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"quant_graph::{name}", "CPU")


def test_the_c_kernels_are_registered_on_the_cpu_key_and_disabled_removes_them():
    assert native.enabled() and all(_has_cpu_kernel(name) for name in OPS)
    with native.disabled():
        assert not native.enabled() and not any(_has_cpu_kernel(name) for name in OPS)
        x = torch.randn(4, 16).half()
        y, scale = qg.npu_dynamic_quant(x)  # the portable kernel serves CPU now
    assert native.enabled() and all(_has_cpu_kernel(name) for name in OPS)
    torch.testing.assert_close(qg.npu_dynamic_quant(x), (y, scale), rtol=0, atol=0)


def test_c_kernel_arguments_are_checked_by_name():
    fields = {f[0]: 0 for f in native.AFFINE_QUANT.fields if f[0] != "threads"}
    with pytest.raises(TypeError, match=r"missing \['cols'\]"):
        native.AFFINE_QUANT(**{k: v for k, v in fields.items() if k != "cols"})
    with pytest.raises(TypeError, match=r"unknown \['colz'\]"):
        native.AFFINE_QUANT(**fields, colz=3)


@pytest.mark.parametrize("bad,rule", [
    (torch.zeros(4, 8, device="meta"), "on meta"),
    (torch.zeros(8, 4).t(), "contiguous=False"),
    (torch.zeros(4, 8, dtype=torch.float64), "got torch.float64"),
])
def test_c_kernels_take_only_contiguous_cpu_tensors_of_their_dtypes(bad, rule):
    args = {f[0]: 0 for f in native.AFFINE_QUANT.fields if f[0] != "threads"}
    args.update(x=bad, scale=None, zero=None, group_ends=None, y=None)
    with pytest.raises(ValueError, match=rule) as info:
        native.AFFINE_QUANT(**args)
    assert "qg_affine_quant needs x" in str(info.value)


def test_a_library_whose_structs_differ_from_the_mirror_is_refused(monkeypatch):
    assert native._abi_mismatch(native.library()) is None
    fields = list(native.DYNAMIC_QUANT.fields)
    fields[2], fields[3] = fields[3], fields[2]  # rows and cols swapped: same types, wrong order
    swapped = native.Kernel("qg_dynamic_quant", fields, native.DYNAMIC_QUANT.extents)
    monkeypatch.setattr(native, "KERNELS", (swapped, *native.KERNELS[1:]))
    problem = native._abi_mismatch(native.library())
    assert problem and "argument structs differ" in problem


def _imports(path: Path, module: str) -> set[str]:
    """quant_graph modules that ``module`` imports anywhere in its file (functions too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("quant_graph")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if not base.startswith("quant_graph"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                as_module = PACKAGE.parent / (sub.replace(".", "/") + ".py")
                as_package = PACKAGE.parent / sub.replace(".", "/") / "__init__.py"
                found.add(sub if as_module.exists() or as_package.exists() else base)
    return found - {module}


def test_no_import_cycle_at_module_level_or_inside_functions():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[module] = _imports(path, module)

    def ancestors(module):  # importing a.b.c runs a/__init__ and a/b/__init__ first, not a cycle
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            raise AssertionError("import cycle: " + " -> ".join(visiting[visiting.index(module):] + [module]))
        if module in done:
            return
        visiting.append(module)
        for target in graph.get(module, ()):
            if target not in ancestors(module):
                visit(target)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_import_quant_graph_imports_no_torchair():
    code = "import quant_graph, sys; print([m for m in sys.modules if 'torchair' in m])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_wheel_holds_only_quant_graph_at_top_level(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO / "quant_graph", source / "quant_graph", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"quant_graph", f"quant_graph-{qg.__version__}.dist-info"}
    assert "quant_graph/converters/dynamic_quant.py" in names
    # the sources native.py builds on first use, headers included
    assert {f"quant_graph/csrc/{name}" for name in ("kernels.c", "kernels.h", "dispatch.cpp")} <= set(names)
    metadata = zipfile.ZipFile(wheel).read(f"quant_graph-{qg.__version__}.dist-info/METADATA").decode()
    assert "License-Expression: BSD-3-Clause" in metadata
    assert f"quant_graph-{qg.__version__}.dist-info/licenses/LICENSE" in names


def test_load_torchair_takes_its_mode_per_call():
    torchair, offline = converters.load_torchair()
    assert offline
    assert converters.load_torchair(offline=True) == (torchair, True)
    with pytest.raises(RuntimeError, match="already loaded offline"):
        converters.load_torchair(offline=False)


def test_a_converter_that_fails_to_register_is_named(monkeypatch):
    from quant_graph._registry import QuantOp

    monkeypatch.setitem(OPS, "npu_imaginary", QuantOp("npu_imaginary", ("Imaginary",), "imaginary"))
    with pytest.raises(RuntimeError, match=r"GE converter of npu_imaginary .*converters/imaginary\.py"):
        converters.load_torchair(offline=True)


@pytest.mark.parametrize("name", sorted(OPS))
def test_public_functions_are_typed_and_documented(name):
    import inspect

    fn = getattr(qg, name)
    signature = inspect.signature(fn)
    assert signature.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name
    doc = inspect.getdoc(fn)
    assert f"torch_npu.{name}" in doc and "Args:" in doc and "Returns:" in doc
    assert all(f"    {p}:" in doc for p in signature.parameters), name


@pytest.mark.parametrize("kernel,args,field", [
    (native.DYNAMIC_QUANT, dict(x=torch.zeros(1, 8, dtype=torch.float16), x_dtype=0, rows=2, cols=8, smooth=None,
                                group_ends=None, groups=0, symmetric=1, per_tensor=0, per_channel=0, channel_rows=1,
                                out_kind=0, out_lo=-128.0, out_hi=127.0, dst_max=127.0, dst_span=255.0,
                                y=torch.zeros(2, 8, dtype=torch.int8), scale=torch.zeros(2), offset=None), "x"),
    (native.AFFINE_QUANT, dict(x=torch.zeros(2, 8), x_dtype=2, rows=2, cols=8, scale=torch.zeros(1, 7), zero=None,
                               zero_is_scalar=0, param_dtype=2, per_row=0, period=1, group_ends=None, groups=0,
                               out_kind=0, out_lo=-128.0, out_hi=127.0, y=torch.zeros(2, 8, dtype=torch.int8)),
     "scale"),
    (native.DEQUANT_SWIGLU_QUANT, dict(
        x=torch.zeros(2, 8, dtype=torch.int32), x_dtype=3, rows=2, h=4, bias=None, weight_scale=torch.zeros(8),
        weight_stride=8, activation_scale=None, float_bias=None, quant_scale=None, quant_stride=0, quant_offset=None,
        group_ends=torch.tensor([1, 2]), groups=2, activate_left=0, swiglu_mode=0, clamp_limit=7.0, glu_alpha=1.0,
        glu_bias=1.0, dynamic=1, out_kind=0, out_lo=-128.0, out_hi=127.0, dst_max=127.0, dst_span=255.0,
        y=torch.zeros(2, 4, dtype=torch.int8), scale=torch.zeros(2)), "weight_scale"),
])
def test_an_undersized_tensor_never_reaches_the_c_kernel(kernel, args, field, monkeypatch):
    """A size field that disagrees with a tensor (our own bug) stops before C reads past it."""
    calls = []
    monkeypatch.setattr(kernel, "_function", calls.append)
    with pytest.raises(RuntimeError, match=rf"{kernel.name} would reach \d+ bytes through {field}\b"):
        kernel(**args)
    assert calls == []
