"""Data parallelism (tinyseg/data_parallel.py): the shares' step gives the plain step's loss and gradients."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from unittest import mock

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg import Tensor, autograd, backend, data_parallel, nn, recording, share_processes
from tinyseg import functional as F
from tinyseg.functional import sample_threads
from tinyseg.models import FCN, SlidingWindow, UNet

IGNORE = 255
MODES = [pytest.param("processes", marks=pytest.mark.skipif(not share_processes.AVAILABLE,
                                                           reason="worker processes are forked on Linux")),
         "threads"]


@contextlib.contextmanager
def cut_every_batch(workers: int = 2, mode: str = "processes"):
    """sample_threads cuts any batch into `workers` shares, whatever the machine and sample size;
    the shares after the first run in worker processes (share_processes.py), or with mode "threads"
    on a pool of threads of its own (they meet, so all run at once). Workers end with the block."""
    with mock.patch.multiple(sample_threads, WORKERS=workers, MIN_SAMPLE_BYTES=0, MIN_PASS_SAMPLE_BYTES=0,
                             _pool=None), \
            mock.patch.object(share_processes, "AVAILABLE", share_processes.AVAILABLE and mode == "processes"):
        try:
            yield
        finally:
            share_processes.end()


def plain_step(model, x, target, criterion):
    """(loss, each weight's gradient) by criterion(model(x), target).backward()."""
    model.zero_grad()
    loss = criterion(model(x), target)
    loss.backward()
    return float(loss.item()), gradients_of(model)


def shares_step(model, x, target, criterion):
    model.zero_grad()
    loss = data_parallel.backward_in_shares(model, x, target, criterion)
    return float(loss.item()), gradients_of(model)


def gradients_of(model) -> list:
    """A copy of each parameter's .grad (None where it has none: a frozen weight)."""
    return [None if p.grad is None else p.grad.copy() for p in model.parameters()]


def batch(seed: int, n: int, channels: int, side: int, classes: int, ignored: float, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((n, channels, side, side)).astype(dtype))
    target = rng.integers(0, classes, (n, side, side))
    target[rng.random(target.shape) < ignored] = IGNORE
    target[0, 0, 0] = 0                                    # at least one labelled pixel
    return x, target


def criteria(name: str, weight):
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)
    return nn.FocalLoss(gamma=2.0, weight=weight, ignore_index=IGNORE)


def network(kind: str, classes: int, seed: int):
    if kind == "fcn":
        return FCN(2, classes, width=3, depth=2, seed=seed, dtype="float64")
    return UNet(2, classes, base_channels=3, depth=2, batch_norm=kind == "unet+bn", seed=seed, dtype="float64")


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 5), workers=st.integers(2, 3),
       side=st.sampled_from([8, 12, 16]), classes=st.integers(2, 4), ignored=st.sampled_from([0.0, 0.3, 1.0]),
       weighted=st.booleans(), loss=st.sampled_from(["ce", "focal"]),
       model=st.sampled_from(["unet", "unet+bn", "fcn"]))
def test_the_shares_give_the_plain_steps_loss_and_gradients(mode, seed, n, workers, side, classes, ignored,
                                                             weighted, loss, model):
    """Any batch size, share count, ignored pixels (all but one, too), class weights, pixel loss,
    and batch norm in training (its running estimates updated once, with the batch's statistics)."""
    x, target = batch(seed, n, 2, side, classes, ignored)
    weight = np.random.default_rng(seed + 1).uniform(0.2, 3.0, classes) if weighted else None
    criterion = criteria(loss, weight)
    in_shares, plain = network(model, classes, seed), network(model, classes, seed)
    with cut_every_batch(workers, mode):
        assert data_parallel.splits_over_cores(in_shares, criterion, x)
        loss_shares, grads_shares = shares_step(in_shares, x, target, criterion)
    loss_plain, grads_plain = plain_step(plain, x, target, criterion)
    assert loss_shares == pytest.approx(loss_plain, rel=1e-12, abs=1e-12)
    for got, expected in zip(grads_shares, grads_plain):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    for (name, got), (_, expected) in zip(in_shares.named_buffers(), plain.named_buffers()):
        np.testing.assert_allclose(got.data, expected.data, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_add_into_grad_as_backward_does(mode):
    """Two steps without zero_grad leave twice the gradient, as two loss.backward() would."""
    x, target = batch(0, 4, 2, 8, 3, 0.2)
    net = UNet(2, 3, base_channels=3, depth=1, dtype="float64")
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    with cut_every_batch(mode=mode):
        _, once = shares_step(net, x, target, criterion)
        data_parallel.backward_in_shares(net, x, target, criterion)
    for p, g in zip(net.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_the_result_does_not_depend_on_which_share_ends_first(mode):
    """Sums in share order: the first share (this thread's) finishing last changes no bit."""
    x, target = batch(1, 4, 2, 8, 3, 0.0, "float32")
    net = UNet(2, 3, base_channels=4, depth=1)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    real_gradients = autograd.gradients
    this_process = os.getpid()

    def first_share_late(output, inputs):
        if threading.current_thread() is threading.main_thread() and os.getpid() == this_process:
            time.sleep(0.05)
        return real_gradients(output, inputs)

    with cut_every_batch(3, mode):
        loss_a, grads_a = shares_step(net, x, target, criterion)
        with mock.patch.object(autograd, "gradients", first_share_late):
            loss_b, grads_b = shares_step(net, x, target, criterion)
    assert loss_a == loss_b
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["batch norm on too few values", "dice", "ce+dice", "sum", "naive",
                                  "recording", "one core", "no_grad", "frozen"])
def test_steps_whose_shares_would_not_add_up_run_plainly(case):
    x, target = batch(2, 2, 3, 2, 2, 0.0, "float32")           # 2 images of 2x2: a 1x1 bottleneck
    net = UNet(3, 2, base_channels=2, depth=1, batch_norm=case == "batch norm on too few values")
    criterion = {"dice": nn.DiceLoss(ignore_index=IGNORE),
                 "ce+dice": nn.CrossEntropyDiceLoss(ignore_index=IGNORE),
                 "sum": nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")}.get(
                     case, nn.CrossEntropyLoss(ignore_index=IGNORE))
    if case == "naive":
        net = SlidingWindow(3, 2, window=5)
    if case == "frozen":
        for p in net.parameters():
            p.requires_grad = False
    with cut_every_batch(1 if case == "one core" else 2):
        loss_alone_stops = case in ("dice", "ce+dice", "sum", "recording", "no_grad")
        plain_criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
        assert data_parallel.splits_over_cores(net, plain_criterion, x) == loss_alone_stops
        if case == "recording":
            with recording.Recording():
                assert not data_parallel.splits_over_cores(net, criterion, x)
        elif case == "no_grad":
            with autograd.no_grad():
                assert not data_parallel.splits_over_cores(net, criterion, x)
        else:
            assert not data_parallel.splits_over_cores(net, criterion, x)


@pytest.mark.parametrize("mode", MODES)
def test_batch_norm_in_evaluation_mode_splits(mode):
    """Running statistics are constants: the shares add up."""
    x, target = batch(3, 4, 2, 8, 2, 0.1)
    net = UNet(2, 2, base_channels=3, depth=1, batch_norm=True, dtype="float64").eval()
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    with cut_every_batch(mode=mode):
        assert data_parallel.splits_over_cores(net, criterion, x)
        loss_shares, grads_shares = shares_step(net, x, target, criterion)
    loss_plain, grads_plain = plain_step(net, x, target, criterion)
    assert loss_shares == pytest.approx(loss_plain, rel=1e-12)
    for got, expected in zip(grads_shares, grads_plain):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_gradients_leaves_grad_alone_and_matches_backward():
    x, target = batch(4, 2, 2, 8, 2, 0.0)
    net = FCN(2, 2, width=3, depth=2, dtype="float64")
    criterion = nn.CrossEntropyLoss()
    weights = list(net.parameters())
    found = autograd.gradients(criterion(net(x), target), weights)
    assert all(p.grad is None for p in weights)
    criterion(net(x), target).backward()
    for p, g in zip(weights, found):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12)
    with pytest.raises(RuntimeError, match="scalar"):
        autograd.gradients(net(x), weights)


@pytest.mark.parametrize("failing", ["the calling thread's share", "the worker's share"])
def test_a_share_that_fails_lets_the_others_go_and_its_error_is_raised(failing):
    """No share waits for ever at a batch norm meeting that a failed share will not come to."""
    x, target = batch(5, 4, 2, 8, 2, 0.0)
    net = UNet(2, 2, base_channels=3, depth=1, batch_norm=True, dtype="float64")
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    real = F.batch_norm_relu
    on_main = failing == "the calling thread's share"

    def breaks_in_one_share(*args, **kwargs):
        if (threading.current_thread() is runner) == on_main:   # runner: the thread calling over_samples
            raise ValueError("this share broke")
        return real(*args, **kwargs)

    raised = []

    def step():
        try:
            shares_step(net, x, target, criterion)
        except BaseException as error:                     # the test looks at it below
            raised.append(error)

    with cut_every_batch(mode="threads"), mock.patch.object(F, "batch_norm_relu", breaks_in_one_share):
        runner = threading.Thread(target=step)
        runner.start()
        runner.join(timeout=60)
    assert not runner.is_alive(), "a share still waits at a meeting"
    assert len(raised) == 1 and isinstance(raised[0], ValueError) and "this share broke" in str(raised[0])


def test_whole_steps_are_cut_at_any_sample_size_where_operators_are_not():
    """A share's whole step pays one hand-over, an operator's share one each: the step cuts smaller samples."""
    if backend.blas_thread_functions() is None:
        pytest.skip("NumPy's BLAS threads cannot be set here: nothing is cut")
    x, target = batch(6, 4, 3, 8, 2, 0.0, "float32")                # 768 bytes a sample
    net = UNet(3, 2, base_channels=2, depth=1)
    with mock.patch.object(sample_threads, "WORKERS", 2):
        assert len(sample_threads.shares_of(x.data)) == 1
        assert len(sample_threads.shares_of(x.data, whole_steps=True)) == 2
        assert data_parallel.splits_over_cores(net, nn.CrossEntropyLoss(), x)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), workers=st.integers(2, 3), side=st.sampled_from([4, 8]),
       bad=st.sampled_from(["channels", "target shape", "labels"]))
def test_bad_input_is_refused_with_the_whole_batchs_shapes(mode, n, workers, side, bad):
    """Checked before the batch is cut: the message names the shapes the caller passed, not a share's."""
    x, target = batch(7, n, 3, side, 2, 0.0, "float32")
    net = UNet(2 if bad == "channels" else 3, 2, base_channels=2, depth=1)
    if bad == "target shape":
        target = target[:, :, :-1]
    if bad == "labels":
        target = np.where(target == 1, 5, target)
    expected = {"channels": rf"got \({n}, 3, {side}, {side}\)",
                "target shape": rf"target has shape \({n}, {side}, {side - 1}\)",
                "labels": rf"labels \[5\] outside \[0, 2\) for input of shape \({n}, 2, {side}, {side}\)"}[bad]
    with cut_every_batch(workers, mode), pytest.raises(ValueError, match=expected):
        data_parallel.backward_in_shares(net, x, target, nn.CrossEntropyLoss())
