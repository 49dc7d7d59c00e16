"""The adversarial fuzz battery (fuzz_battery.py) on both kernel paths, in a child process
so that a crash in the C kernels fails the test with its output instead of killing pytest;
and once more with the C kernels built under AddressSanitizer + UndefinedBehaviorSanitizer.
Run with -s to see the per-op counts (or: python tests/fuzz_battery.py native portable --table)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from fuzz_battery import table

from quant_graph import _kernel_cache

BATTERY = Path(__file__).parent / "fuzz_battery.py"


def crash_report(stderr):
    """The case the battery was running (it names each on stderr first) and the first
    lines of what killed it, not the sanitizer's whole Python stack."""
    lines = stderr.splitlines()
    died = next((i for i, line in enumerate(lines) if "runtime error" in line or "ERROR:" in line
                 or "Traceback" in line or "Fatal Python error" in line), len(lines))
    cases = [line for line in lines[:died] if line.startswith(("native: ", "portable: "))]
    return "\n".join(["last case: " + (cases[-1] if cases else "none"), *lines[died:died + 30]])


def run_battery(paths, env=None):
    result = subprocess.run([sys.executable, str(BATTERY), *paths], capture_output=True, text=True,
                            env=env, cwd=BATTERY.parent.parent)
    assert result.returncode == 0, f"the battery died (rc {result.returncode}):\n{crash_report(result.stderr)}"
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["path"] for r in reports] == list(paths), result.stdout[-3000:]
    return reports


def check(reports):
    print("\n" + table(reports))
    for r in reports:
        assert set(r["counts"]) == {"npu_dynamic_quant", "npu_dynamic_quant_asymmetric", "npu_quantize",
                                    "npu_group_quant", "npu_dequant_swiglu_quant"}
        for op, c in r["counts"].items():
            assert c.get("errors", 0) and c.get("matches", 0), (r["path"], op, c)  # both outcomes exercised
    assert not [f for r in reports for f in r["failures"]], table(reports)


def test_the_battery_on_both_kernel_paths():
    check(run_battery(["native", "portable"]))


def test_the_battery_on_the_c_kernels_under_address_and_undefined_behaviour_sanitizers(tmp_path, sanitized_cache):
    # the reports go to files: the child's stderr could be lost at an abort
    env = {**os.environ, _kernel_cache.SANITIZE_ENV: "address,undefined",
           "QUANT_GRAPH_CACHE_DIR": str(sanitized_cache),
           "ASAN_OPTIONS": f"detect_leaks=0:log_path={tmp_path / 'asan'}",
           "UBSAN_OPTIONS": f"halt_on_error=1:print_stacktrace=1:log_path={tmp_path / 'ubsan'}",
           "LD_PRELOAD": " ".join(_kernel_cache.sanitizer_preload("address,undefined"))}
    try:
        reports = run_battery(["native"], env)
    finally:
        sanitizer_reports = "".join(p.read_text() for p in [*tmp_path.glob("asan.*"), *tmp_path.glob("ubsan.*")])
        assert not sanitizer_reports, sanitizer_reports[-6000:]
    assert list(sanitized_cache.glob("kernels-*.so")), "the sanitized kernels were not built"
    assert list(sanitized_cache.glob("dispatch-*.so")), "the sanitized dispatcher kernels were not built"
    check(reports)
