"""Every validation site in quant_graph's op modules is hit by some invalid sample.

Sites are found live from the source with ``ast``, never by line number: each call to
``torch._check_value``/``_check_type``/``_check``, each ``raise ValueError/TypeError``, and
each call into a shared helper of ``quant_graph/_checks.py`` (whose own raises count at the
op module's call site). An op module is any module of the package holding such a site.
Every invalid sample of samples.py runs in eager mode and, unless eager-only, under
FakeTensorMode; the innermost op-module frame of its exception's traceback names the site
it covers. A rule added without a sample fails here, listing where it is.
"""

import ast
import traceback
from pathlib import Path

import pytest
from samples import invalid_samples
from test_registry import fake_call
from torch._subclasses.fake_tensor import FakeTensorMode

import quant_graph

PACKAGE = Path(quant_graph.__file__).resolve().parent
HELPERS = PACKAGE / "_checks.py"
CHECKS = {"_check_value", "_check_type", "_check"}
# Modules whose raises are not argument rules of an op, and where they are tested instead.
NOT_OP_RULES = {
    "native.py": "invariants of the C ABI (argument structs, tensors handed to C): test_architecture.py",
}
ERRORS = {"ValueError", "TypeError", "NotImplementedError"}  # the last: a mode refused by name


def _helper_names():
    tree = ast.parse(HELPERS.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}


def _is_site(node, helpers):
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in CHECKS and isinstance(func.value, ast.Name) \
                and func.value.id == "torch":
            return True
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        return name in helpers
    if isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(exc, ast.Name) and exc.id in ERRORS
    return False


def validation_sites(package=PACKAGE):
    """{(file, first line, last line): source text} of every site in every op module."""
    helpers = _helper_names()
    sites = {}
    for path in sorted(package.rglob("*.py")):
        if path == HELPERS or path.name in NOT_OP_RULES:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if _is_site(node, helpers):
                text = ast.get_source_segment(source, node).splitlines()[0]
                sites[(path, node.lineno, node.end_lineno)] = text
    return sites


def site_of(err, sites):
    """The site an exception came from: its innermost frame in an op module on a site."""
    frames = list(traceback.walk_tb(err.__traceback__))
    for frame, lineno in reversed(frames):
        path = Path(frame.f_code.co_filename).resolve()
        if path == HELPERS or not path.is_relative_to(PACKAGE):
            continue
        for key in sites:
            if key[0] == path and key[1] <= lineno <= key[2]:
                return key
    return None


def test_the_op_modules_are_found():
    modules = {path.name for path, _, _ in validation_sites()}
    assert {"dynamic_quant.py", "quantize.py", "group_quant.py", "dequant_swiglu_quant.py"} <= modules


def test_every_validation_site_has_an_invalid_sample():
    sites = validation_sites()
    covered, unattributed = set(), []
    for info, sample in invalid_samples():
        runs = [lambda: info.public(*sample.args, **sample.kwargs)]
        if not (sample.eager_only or sample.public_only):
            runs.append(lambda: fake_call(info.op, sample.args, sample.kwargs, FakeTensorMode()))
        for run in runs:
            with pytest.raises(sample.error) as caught:
                run()
            site = site_of(caught.value, sites)
            if site is None:
                unattributed.append(f"{info.name}:{sample.name}")
            else:
                covered.add(site)
    assert not unattributed, f"raised outside any validation site: {unattributed}"
    missing = [f"{path.relative_to(PACKAGE.parent)}:{first}: {text}"
               for (path, first, last), text in sorted(sites.items()) if (path, first, last) not in covered]
    assert not missing, "validation sites no invalid sample in tests/samples.py reaches:\n" + "\n".join(missing)


def test_the_guard_sees_a_new_rule(tmp_path):
    """A site in a module the guard has never seen counts, and is reported uncovered."""
    module = tmp_path / "new_op.py"
    module.write_text("import torch\n\ndef check(x):\n    torch._check_value(x.dim() == 2, lambda: 'new_op: x')\n"
                      "    if x.numel() > 9:\n        raise TypeError('new_op: x too big')\n")
    sites = validation_sites(tmp_path)
    assert sorted(sites.values()) == ["raise TypeError('new_op: x too big')",
                                      "torch._check_value(x.dim() == 2, lambda: 'new_op: x')"]
    assert site_of(ValueError("not from there"), sites) is None
