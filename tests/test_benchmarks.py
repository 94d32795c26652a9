"""The benchmark suite (benchmarks/): it runs, it writes its files, and it compares like with like.

A comparison with PyTorch is only fair if PyTorch runs the same network, so
the twins the benchmarks time (tinyseg.interop.to_torch) must have the same
parameters and, loaded with tinyseg's weights, compute the same gradients
(tests/test_interop_torch.py checks their logits). The PyTorch tests skip
where torch is not installed.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyseg
from tinyseg import autograd
from tinyseg import functional as F
from tinyseg.complexity import count_macs, count_parameters
from tinyseg.complexity.counting import ResultArrays
from tinyseg.models import build_model

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import bench_models  # noqa: E402
import bench_traffic  # noqa: E402
import traffic  # noqa: E402
import bench_unet_step  # noqa: E402
import report  # noqa: E402
from common import cpu_model, growth_exponent  # noqa: E402

# Small versions of the benchmark's three models, quick to run here.
SMALL = {
    "naive": dict(name="naive", in_channels=3, num_classes=4, window=7, width=8),
    "fcn": dict(name="fcn", in_channels=3, num_classes=4, width=8, depth=3),
    "unet": dict(name="unet", in_channels=3, num_classes=4, base_channels=4, depth=2),
}


def test_growth_exponent_recovers_a_power_law():
    pixels = [32 ** 2, 64 ** 2, 128 ** 2, 256 ** 2]
    a, b = growth_exponent(pixels, [3e-3 * p ** 1.5 for p in pixels])
    assert b == pytest.approx(1.5)
    assert a == pytest.approx(3e-3)


def test_growth_exponent_needs_two_sizes():
    with pytest.raises(ValueError, match="two different sizes"):
        growth_exponent([1024, 1024], [1.0, 2.0])


def test_the_machine_stamp_names_the_processor_its_family_model_and_avx512():
    cpuinfo = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
               "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\n"
               "processor\t: 1\nmodel name\t: another\n")
    assert cpu_model(cpuinfo) == "AMD EPYC (family 25, model 17, AVX-512)"
    assert cpu_model("model name\t: Some CPU\nflags\t: sse2 avx2\n") == "Some CPU"
    assert cpu_model("") == ""


def test_quick_suite_writes_json_markdown_and_plots(tmp_path):
    """The one command, in a fresh process as a user runs it, with --quick and --out."""
    command = [sys.executable, os.path.join(BENCHMARKS, "run_suite.py"), "--quick", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")       # no thread contention on a busy machine
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((tmp_path / "models.json").read_text())
    machine = results["machine"]
    assert "NumPy" in machine and results["versions"]["numpy"] == np.__version__
    rows = results["models"]["rows"]
    assert {row["model"] for row in rows} == {"naive", "fcn", "unet"}
    assert {row["mode"] for row in rows} == {"inference", "train"}
    assert all(row["ms"] > 0 for row in rows)
    assert all(fit["b"] == fit["b"] for fit in results["models"]["growth"])   # not nan
    assert [step["variant"] for step in results["unet_steps"]] == ["adam"]     # --quick: one variant
    step = results["unet_steps"][0]["devices"]["cpu"]
    assert step["tinyseg_ms"] > 0 and step["tinyseg_tracemalloc_MiB"] > 0
    assert "first_step_MiB" in step["tinyseg_rss"], step["tinyseg_rss"]

    markdown = (tmp_path / "models.md").read_text()
    assert f"Machine: {machine}" in markdown.splitlines()[:4]
    assert "| model | size | batch | tinyseg cpu |" in markdown

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no plots" in done.stdout
        return
    bars = "cpu_vs_gpu.png" if tinyseg.cuda_available() else "frameworks.png"
    for name in ("time_vs_pixels.png", bars):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_tables_without_pytorch_or_gpu():
    """Only tinyseg on the CPU: no PyTorch columns, and the report says what was left out."""
    models = bench_models.run_models(sizes=(8, 16), models=("fcn",), use_torch=False, use_gpu=False,
                                     budget_s=0.0, max_repeat=1)
    assert models["targets"] == ["tinyseg/cpu"]
    assert len(models["rows"]) == 4 and len(models["growth"]) == 2
    results = dict(models=models, machine="test machine")
    text = report.markdown(results)
    assert "pytorch cpu" not in text and "tinyseg/pytorch" not in text
    assert "GPU skipped" in text


def test_the_benchmark_scripts_import_in_a_line_not_a_cycle():
    """common <- steps <- bench_unet_step <- bench_models <- run_suite, and report beside: no
    module imports one that imports it."""
    import ast
    imported = {}
    for name in ("common", "report", "steps", "bench_unet_step", "bench_models", "run_suite", "bench_ops"):
        with open(os.path.join(BENCHMARKS, name + ".py")) as file:
            tree = ast.parse(file.read())
        imported[name] = {node.module if isinstance(node, ast.ImportFrom) else alias.name
                          for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                          for alias in node.names}
    for name, modules in imported.items():
        for other in modules & set(imported):
            assert name not in imported[other], f"{name} and {other} import each other"


def test_unet_step_variants_cover_batch_norm_and_both_optimizers():
    variants = bench_unet_step.UNET_VARIANTS
    assert {bench_unet_step.unet_config(v)[0]["batch_norm"] for v in variants} == {True, False}
    assert {bench_unet_step.unet_config(v)[1] for v in variants} == {"adam", "sgd"}


def test_naive_training_above_128_is_skipped_by_default_and_reported(monkeypatch):
    monkeypatch.setattr(bench_models, "NAIVE_TRAIN_MAX_SIZE", 8)       # 16 stands for 256
    models = bench_models.run_models(sizes=(8, 16), models=("naive",), use_torch=False,
                                     use_gpu=False, budget_s=0.0, max_repeat=1)
    sizes = {(row["mode"], row["size"]) for row in models["rows"]}
    assert sizes == {("inference", 8), ("inference", 16), ("train", 8)}
    assert models["skipped"] == ["naive train at 16x16: skipped by default (about a minute and 3 GB "
                                 "per framework); pass --naive-256 to include it"]


# ----------------------------------------------------------- the PyTorch twins

@pytest.fixture(scope="module")
def to_torch():
    pytest.importorskip("torch")
    from tinyseg.interop import to_torch
    return to_torch


@pytest.mark.parametrize("name", ["naive", "fcn", "unet"])
def test_twin_of_the_benchmarked_model_has_the_same_parameter_count(to_torch, name):
    model = build_model(bench_models.CONFIGS[name])
    twin = to_torch(model)
    assert sum(p.numel() for p in twin.parameters()) == count_parameters(model)
    assert [tuple(p.shape) for p in twin.parameters()] == [p.shape for p in model.parameters()]


@pytest.mark.parametrize("name", ["fcn", "unet"])
def test_twin_computes_the_same_gradients(to_torch, name):
    """The training step times the same work: d cross_entropy / d weights agree, name by name."""
    import torch
    model = build_model(SMALL[name])
    twin = to_torch(model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, (2, 8, 8))
    ours = F.cross_entropy(model(tinyseg.Tensor(x)), y)
    ours.backward()
    theirs = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    their_grads = {n: p.grad.numpy() for n, p in twin.named_parameters()}
    for n, p in model.named_parameters():
        scale = np.abs(their_grads[n]).max()
        np.testing.assert_allclose(p.grad, their_grads[n], rtol=1e-3, atol=1e-4 * scale, err_msg=n)


def test_bench_ops_quick_measures_every_kind_against_pytorch(capsys):
    import bench_ops
    rows = bench_ops.main(["--quick", "--repeat", "1"])
    kinds = {case["kind"] for case in bench_ops.cases(quick=True)}
    assert {"conv2d", "conv_transpose2d", "max_pool2d", "cross_entropy", "batch_norm"} <= kinds
    assert len(rows) == len(kinds) and all(row["fwd_bwd_ms"] > 0 for row in rows)
    assert 0 < rows[0]["of_gemm"]                                  # the conv row has its GEMM share
    if bench_ops.torch is not None:
        assert all(row["fwd_bwd_ratio"] > 0 for row in rows)
    assert "kernel" in capsys.readouterr().out                     # the stamp names the BLAS kernel


def test_bench_ops_unet_layers_are_the_shapes_the_unet_step_convolves(monkeypatch):
    """--unet-layers times each 3x3 convolution of the benchmarked U-Net on the input shape it gets in
    the step: recorded from a real forward pass of that model, in the order it runs them."""
    import bench_ops
    from steps import CONFIGS
    seen = []
    conv2d_relu = F.conv2d_relu

    def recording(x, weight, *args, **kwargs):
        if weight.shape[2:] == (3, 3):
            seen.append((x.shape[1], weight.shape[0], x.shape[2]))
        return conv2d_relu(x, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d_relu", recording)
    build_model(CONFIGS["unet"])(tinyseg.Tensor(np.zeros((1, 3, 32, 32), np.float32)))
    cases = bench_ops.unet_layer_cases(32)
    assert [(case["c_in"], case["c_out"], case["size"]) for case in cases] == seen
    assert len(seen) == 14 and cases[0]["name"] == "conv+relu 3->16 @32 (encoder.0.0)"


# ----------------------------------------------------------- traffic.py, bench_traffic.py: bytes counted

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, broadcast_axis=st.integers(0, 3))
def test_traffic_counts_an_elementwise_pass_its_operands_and_result(shape, broadcast_axis):
    a = np.ones(shape, np.float32)
    b_shape = tuple(1 if i == broadcast_axis else n for i, n in enumerate(shape))
    b = np.ones(b_shape, np.float64)                        # broadcast: its own bytes, read once
    with traffic.counting() as tally:
        x, y = traffic.counted(a), traffic.counted(b)
        total = x * y                                        # float64: written at 8 bytes a number
        x.T.reshape(-1)                                      # a view where it can, a copy where it must
        views = x[..., ::2], x.transpose(), np.broadcast_to(y, (2,) + y.shape)
    assert isinstance(total, traffic.Counted) and all(isinstance(v, traffic.Counted) for v in views)
    assert tally.calls["multiply"] == 1
    assert tally.read["multiply"] == a.nbytes + b.nbytes
    assert tally.written["multiply"] == a.size * 8
    copies = tally.written.get("reshape (a copy)", 0)
    assert copies == (a.nbytes if sum(n > 1 for n in shape) > 1 else 0)   # x.T is not contiguous
    assert set(tally.calls) <= {"multiply", "reshape (a copy)"}       # views move nothing


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), pad=st.integers(0, 2))
def test_traffic_counts_products_apart_and_a_call_once_whatever_numpy_does_inside(m, k, n, pad):
    with traffic.counting() as tally:
        a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)      # made Counted, written
        np.empty((m, n)), np.empty_like(b)                   # nothing written yet
        a @ b
        np.dot(a, b)
        padded = np.pad(a, pad)                              # NumPy's pad makes and fills arrays inside
        padded[:m, :k] = a                                   # an assignment: reads a, writes the slice
        np.copyto(padded[:m, :k], a)                         # the same
        a.sum(axis=0)                                        # a reduction: reads a, writes k numbers
        np.concatenate([a, a])
        every_other = padded[:, ::2]
        np.ascontiguousarray(every_other)                    # a copy unless already contiguous
    copied = 0 if every_other.flags.c_contiguous else every_other.nbytes
    assert tally.flops == 2 * (2 * m * n * k)
    read = a.nbytes * (1 + 1 + 1 + 1 + 2) + copied              # pad, setitem, copyto, sum, concatenate
    written = a.nbytes + b.nbytes + padded.nbytes + 2 * a.nbytes + k * 4 + 2 * a.nbytes + copied
    assert tally.outside_products()[:2] == (read, written)      # ones, pad, setitem + copyto, sum, ...
    assert tally.calls["pad"] == 1 and tally.calls["setitem"] == 1 and tally.calls["copyto"] == 1


def test_traffic_of_a_unet_step_sees_its_products_and_every_activation_written():
    """The products of a step are about three times the forward's MACs (forward, input and weight
    gradients; a few percent more where the fast kernels' rows run over the padding), and outside
    them every layer output is written at least once: a count that missed a kind of call would
    fail one of the two."""
    command = [sys.executable, os.path.join(BENCHMARKS, "bench_traffic.py"), "--batch", "2", "--size", "64",
               "--batch-norm", "--optimizer", "adam"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    flops = float(re.search(r"([0-9.e+-]+) GFLOP", done.stdout).group(1)) * 1e9
    passes_written = float(re.search(r"written [0-9.]+ MiB \(([0-9.]+) passes\)", done.stdout).group(1))
    model = build_model(dict(SMALL["unet"], base_channels=16, depth=3, batch_norm=True))
    forward_macs = count_macs(model(tinyseg.Tensor(np.zeros((2, 3, 64, 64), np.float32))))
    assert 2 * 3 * forward_macs * 0.95 <= flops <= 2 * 3 * forward_macs * 1.15
    assert passes_written >= 1


@pytest.mark.parametrize("batch_norm", [False, True])
def test_traffic_layer_outputs_are_the_results_of_the_textbook_graphs_layers(batch_norm):
    model = build_model(dict(SMALL["unet"], batch_norm=batch_norm))
    with ResultArrays():                   # while a recording is on, every layer runs on its own
        output = model(tinyseg.Tensor(np.zeros((2, 3, 16, 16), np.float32)))
    layers = {"conv2d", "batch_norm", "relu", "max_pool2d", "conv_transpose2d", "cat"}
    graph_bytes = sum(4 * math.prod(entry.shape) for entry in autograd.topological_order(output)
                      if isinstance(entry, autograd.Node) and entry.op in layers)
    unet = SMALL["unet"]
    assert graph_bytes == bench_traffic.layer_output_bytes(2, 16, unet["base_channels"], unet["depth"],
                                                           unet["num_classes"], batch_norm)


def test_traffic_counts_a_region_written_again_while_recent_once_to_memory():
    whole = np.zeros(2 * traffic.BLOCK_BYTES // 4, np.float32)       # larger than the cache
    with traffic.counting() as tally:
        x = traffic.counted(whole)
        sample = x[:1024]
        sample *= 2                        # to memory
        sample += 1                        # the same region, lately written: in cache
        x[:1024] += 1                      # the same (and x[:1024] = x[:1024] after it moves nothing)
        x[1024:2048] = 3                   # another region: to memory
        x *= 2                             # the whole array: more than the cache holds, to memory
        x += 1                             # and again
        np.ones(16) * 2                    # a small array: in cache
    assert tally.outside_products()[2] == 2 * 1024 * 4 + 2 * whole.nbytes
    assert tally.calls["setitem"] == 1 and tally.calls["add"] == 3
