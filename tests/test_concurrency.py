"""The eager kernels from several threads at once, and in a process forked after using them."""

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import torch
from helpers import assert_identical
from samples import valid_samples

from quant_graph import native


def test_threads_calling_at_once_get_the_serial_results():
    calls = [(info.public, s.args, s.kwargs) for info, s in valid_samples()][::3]
    serial = [fn(*args, **kwargs) for fn, args, kwargs in calls]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            concurrent = list(pool.map(lambda call: call[0](*call[1], **call[2]), calls))
            for got, want in zip(concurrent, serial, strict=True):
                assert_identical(got, want)


def _quantize_in_child(x_bytes, queue):
    import quant_graph as qg

    x = torch.frombuffer(bytearray(x_bytes), dtype=torch.float16).reshape(512, 1024)
    y, scale = qg.npu_dynamic_quant(x)
    queue.put((y.numpy().tobytes(), scale.numpy().tobytes(), native._in_forked_child))


def test_a_process_forked_after_using_the_kernels_can_still_use_them():
    """OpenMP's pool does not survive fork: without care the child hangs in its first call."""
    import quant_graph as qg

    x = torch.randn(512, 1024, generator=torch.Generator().manual_seed(0)).half()
    y, scale = qg.npu_dynamic_quant(x)  # the parent's OpenMP pool now exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_quantize_in_child, args=(x.numpy().tobytes(), queue))
    child.start()
    try:
        y_bytes, scale_bytes, forked = queue.get(timeout=60)  # before join: the result is larger than a pipe
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert forked and y_bytes == y.numpy().tobytes() and scale_bytes == scale.numpy().tobytes()


def test_a_decode_size_call_runs_on_one_thread_and_a_large_one_on_all(monkeypatch):
    """Waking a second thread costs more than a one-token row's work. (The Python kernels'
    policy; test_dispatch holds the C++ kernels to it.)"""
    import quant_graph as qg

    threads_asked = []
    run = native.DYNAMIC_QUANT._function
    monkeypatch.setattr(native.DYNAMIC_QUANT, "_function",
                        lambda struct: (threads_asked.append(struct.threads), run(struct))[1])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with native.without_dispatch():
            for tokens in (1, 64):
                qg.npu_dynamic_quant(torch.ones(tokens, 7168, dtype=torch.float16))
    finally:
        torch.set_num_threads(threads)
    assert threads_asked == [1, 2]
