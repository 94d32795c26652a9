"""The shares of a training step in worker processes (tinyseg/share_processes.py): the workers hold the
caller's model as it is at every step, and a failure anywhere ends them with its error raised here."""

from __future__ import annotations

import multiprocessing.context
import os
import pickle
import signal
import time
from unittest import mock

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg import data_parallel, nn, optim, share_processes
from tinyseg import functional as F
from test_data_parallel import IGNORE, batch, cut_every_batch, plain_step, shares_step
from tinyseg.models import UNet
from tinyseg.train import TrainConfig, fit

pytestmark = pytest.mark.skipif(not share_processes.AVAILABLE, reason="worker processes are forked on Linux")


def twins(batch_norm: bool = True, seed: int = 0):
    return [UNet(2, 3, base_channels=3, depth=1, batch_norm=batch_norm, seed=seed, dtype="float64")
            for _ in range(2)]


def assert_same_weights(a, b):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12, err_msg=name)


@settings(max_examples=8, deadline=None)
@given(steps=st.integers(1, 4), seed=st.integers(0, 2**16), batch_norm=st.booleans(),
       optimizer=st.sampled_from(["sgd", "adam"]))
def test_an_optimizers_updates_reach_the_workers(steps, seed, batch_norm, optimizer):
    """The optimizer changes the weights in place, in memory the workers share: after any number of
    steps the model trained in shares is the one trained plainly (its batch norm statistics too)."""
    in_shares, plain = twins(batch_norm, seed)
    make = {"sgd": lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
            "adam": lambda m: optim.Adam(m.parameters(), lr=0.01)}[optimizer]
    opt_shares, opt_plain = make(in_shares), make(plain)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    arrays = [t.data for t in share_processes.tensors_of(in_shares)]     # taken before training
    with cut_every_batch():
        for k in range(steps):
            x, target = batch(seed + k, 4, 2, 8, 3, 0.2)
            loss_shares, _ = shares_step(in_shares, x, target, criterion)
            loss_plain, _ = plain_step(plain, x, target, criterion)
            assert loss_shares == pytest.approx(loss_plain, rel=1e-10)
            if k == 0:
                first_workers = share_processes.worker_pids()
            assert share_processes.worker_pids() == first_workers    # the same worker all along
            opt_shares.step()
            opt_plain.step()
    assert len(first_workers) == 1
    assert all(a is t.data for a, t in zip(arrays, share_processes.tensors_of(in_shares)))   # still its own
    assert_same_weights(in_shares, plain)


@pytest.mark.parametrize("change", ["load_state_dict", "eval", "requires_grad", "a setting"])
def test_a_changed_model_is_what_the_workers_run(change):
    """Training modes, trainable weights or a module's setting changed since the workers started:
    the next step starts new ones. New values (load_state_dict) reach the same workers, copied at
    every step. Either way the step's loss and gradients are those of the model as it is now."""
    in_shares, plain = twins(batch_norm=True)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    x, target = batch(1, 4, 2, 8, 3, 0.0)
    with cut_every_batch():
        shares_step(in_shares, x, target, criterion)
        plain_step(plain, x, target, criterion)                   # the same running statistics
        before = share_processes.worker_pids()
        if change == "load_state_dict":
            other = UNet(2, 3, base_channels=3, depth=1, batch_norm=True, seed=7, dtype="float64")
            in_shares.load_state_dict(other.state_dict())
            plain.load_state_dict(other.state_dict())
        for model in (in_shares, plain):
            if change == "eval":
                model.eval()
            if change == "requires_grad":
                next(model.parameters()).requires_grad = False
            if change == "a setting":
                for module in model.modules():
                    if isinstance(module, nn.BatchNorm2d):
                        module.eps = 0.5
        got = shares_step(in_shares, x, target, criterion)
        assert (share_processes.worker_pids() == before) == (change == "load_state_dict")
    assert_same_step(got, plain_step(plain, x, target, criterion))


def test_the_callers_arrays_stay_where_they_are():
    """The step shares copies with the workers: an array of the model taken before training is
    still the model's after steps and updates (the optimizer's changes land in it)."""
    net = twins(batch_norm=True)[0]
    arrays = [p.data for p in net.parameters()] + [b.data for b in net.buffers()]
    before = [a.copy() for a in arrays]
    opt = optim.SGD(net.parameters(), lr=0.1)
    with cut_every_batch():
        for k in range(2):
            shares_step(net, *batch(k, 4, 2, 8, 3, 0.0), nn.CrossEntropyLoss(ignore_index=IGNORE))
            opt.step()
    assert all(a is t.data for a, t in zip(arrays, list(net.parameters()) + list(net.buffers())))
    assert all(not np.array_equal(a, b) for a, b in zip(arrays, before))


def assert_same_step(got, expected):
    """The same loss and gradients (None for the same weights)."""
    assert got[0] == pytest.approx(expected[0], rel=1e-10)
    for g, e in zip(got[1], expected[1]):
        assert (g is None) == (e is None)
        if g is not None:
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("failure", ["error", "OSError", "error that does not pickle", "exit",
                                     "killed between steps", "the caller's share fails"])
def test_a_failed_worker_is_told_and_the_next_step_starts_anew(failure):
    """A worker's error is raised here (one that cannot cross the pipe as a RuntimeError naming it), a
    worker that ends mid-step is named with its exit code; no share is left waiting at a meeting, and
    the next step runs on new workers and gives the plain step's numbers."""
    net, plain = twins(batch_norm=True)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    x, target = batch(2, 4, 2, 8, 3, 0.0)
    caller = os.getpid()

    class Unpicklable(ValueError):
        def __reduce__(self):
            raise pickle.PicklingError("no")

    def fails(*args, **kwargs):
        if (os.getpid() == caller) == (failure == "the caller's share fails"):
            if failure == "exit":
                os._exit(3)
            raise {"OSError": OSError, "error that does not pickle": Unpicklable}.get(failure, ValueError)(
                "this share broke")
        return real(*args, **kwargs)

    real = F.batch_norm_relu
    expected_error = {"error": (ValueError, "this share broke"), "OSError": (OSError, "this share broke"),
                      "error that does not pickle": (RuntimeError, "Unpicklable: this share broke"),
                      "exit": (RuntimeError, r"worker process tinyseg-share-1 ended \(exit code 3\)"),
                      "the caller's share fails": (ValueError, "this share broke")}
    with cut_every_batch():
        if failure == "killed between steps":
            shares_step(net, x, target, criterion)
            killed = share_processes.worker_pids()[0]
            os.kill(killed, signal.SIGKILL)
            wait_until(lambda: not alive(killed))
        else:
            with mock.patch.object(F, "batch_norm_relu", fails):
                kind, message = expected_error[failure]
                started = time.perf_counter()
                with pytest.raises(kind, match=message):
                    shares_step(net, x, target, criterion)
                assert time.perf_counter() - started < 60
            assert share_processes.worker_pids() == []            # ended, none left waiting
        got = shares_step(net, x, target, criterion)
    assert_same_step(got, plain_step(plain, x, target, criterion))


def test_ctrl_c_is_the_callers_and_end_ends_the_workers():
    """SIGINT (Ctrl-C reaches every process of the terminal's group) leaves a worker running; the
    caller handles it and ends the workers (train.py: after each epoch, however it ended)."""
    net = twins(batch_norm=False)[0]
    x, target = batch(3, 4, 2, 8, 3, 0.0)
    with cut_every_batch():
        shares_step(net, x, target, nn.CrossEntropyLoss())
        pid = share_processes.worker_pids()[0]
        os.kill(pid, signal.SIGINT)
        time.sleep(0.2)
        assert share_processes.worker_pids() == [pid] and alive(pid)
        share_processes.end()
        assert share_processes.worker_pids() == [] and not alive(pid)


def wait_until(condition, seconds: float = 30.0) -> None:
    """Poll `condition` until it holds (a busy machine may take a while to end a process)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """The process runs: not ended, nor a zombie whose threads have all ended (its BLAS's threads
    outlive its first one for a moment; until then it is not yet waited for as ended)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except FileNotFoundError:
        return False
    return not (fields["State"].split()[0] == "Z" and int(fields["Threads"]) <= 1)


def test_training_ends_the_workers_after_each_epoch(tmp_path):
    """fit runs its steps in shares and leaves no worker behind, whether the epoch ends or fails."""
    config = TrainConfig(model="unet", epochs=2, batch_size=4, size=24, train_count=8, val_count=4,
                         base_channels=4, depth=2, out=str(tmp_path / "run"), seed=3)
    with cut_every_batch(), mock.patch.object(share_processes, "end", wraps=share_processes.end) as end:
        started = []
        real = data_parallel.steps_in_processes

        def watched(*args, **kwargs):
            result = real(*args, **kwargs)
            started.append(share_processes.worker_pids())
            return result

        with mock.patch.object(data_parallel, "steps_in_processes", watched):
            fit(config, show_progress=False, log=lambda *a: None)
        assert len(started) == 4 and all(started)                 # 2 epochs of 2 steps, in shares
        assert started[0] != started[2]                           # new workers for the second epoch
        assert end.call_count >= 2 and share_processes.worker_pids() == []


def test_a_system_that_refuses_fork_gets_the_shares_on_threads():
    """fork failing (no memory for the copy, a limit on processes): a warning that says so, this step
    and the later ones on threads, with the plain step's numbers."""
    net, plain = twins(batch_norm=True)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    x, target = batch(4, 4, 2, 8, 3, 0.0)
    refused = OSError(12, "Cannot allocate memory")
    fork = mock.patch.object(multiprocessing.context.ForkProcess, "start", side_effect=refused)
    with cut_every_batch(), fork:
        with pytest.warns(RuntimeWarning, match="refused a worker process .*Cannot allocate memory.*threads"):
            got = shares_step(net, x, target, criterion)
        assert not share_processes.AVAILABLE and share_processes.worker_pids() == []
    assert share_processes.AVAILABLE                                  # (cut_every_batch puts it back)
    assert_same_step(got, plain_step(plain, x, target, criterion))


def test_a_worker_for_each_share_but_the_first_and_no_more():
    """A batch smaller than the cores forks fewer workers; a larger one later gets new ones, enough
    for it; a smaller one after that (an epoch's last batch) uses the first of those."""
    net, plain = twins(batch_norm=True)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    with cut_every_batch(workers=3):
        counts = []
        for n in (2, 4, 2):
            x, target = batch(n, n, 2, 8, 3, 0.0)
            assert_same_step(shares_step(net, x, target, criterion), plain_step(plain, x, target, criterion))
            counts.append(share_processes.worker_pids())
    assert [len(pids) for pids in counts] == [1, 2, 2] and counts[2] == counts[1]


def test_a_model_that_changes_at_every_step_is_told_what_changes():
    """Each change starts the workers anew (slow): after three steps in a row, a warning names the
    module's setting that keeps changing; the numbers stay right."""
    net, plain = twins(batch_norm=True)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    x, target = batch(5, 4, 2, 8, 3, 0.0)
    bn_name, _ = next((name, m) for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d))
    with cut_every_batch():
        for k in range(4):
            for model in (net, plain):
                for m in model.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.eps = 1e-5 * (k + 1)
            if k == 3:
                with pytest.warns(RuntimeWarning, match=rf"model changed \({bn_name}\.eps\) before each of"):
                    got = shares_step(net, x, target, criterion)
            else:
                got = shares_step(net, x, target, criterion)
            assert_same_step(got, plain_step(plain, x, target, criterion))
