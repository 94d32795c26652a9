"""Learning-rate schedules: closed formulas, PyTorch's sequences, and exact resumes from state_dict."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from tinyseg import Tensor, optim
from tinyseg.optim import lr_scheduler as S

STEPS = 14


def sgd(lr: float = 0.1):
    return optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=lr)


def lrs_of(scheduler, steps: int = STEPS) -> list:
    """optimizer.lr before each step: [lr at t = 0, lr at t = 1, ...]."""
    values = []
    for _ in range(steps):
        values.append(scheduler.optimizer.lr)
        assert scheduler.get_last_lr() == [scheduler.optimizer.lr]
        scheduler.step()
    return values


# Each case: how to make the schedule (by tinyseg's or torch's module), and lr(t) / base_lr.
CASES = {
    "step": (lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), lambda t: 0.5 ** (t // 3)),
    "cosine": (lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
               lambda t: 0.01 + (1 - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2),
    "poly": (lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0),
             lambda t: (1 - min(t, 8) / 8) ** 2),
    "linear": (lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=4),
               lambda t: 0.1 + 0.9 * min(t, 4) / 4),
}


@pytest.mark.parametrize("name", CASES)
def test_schedule_follows_its_closed_formula(name):
    make, factor = CASES[name]
    values = lrs_of(make(S, sgd(0.1)))
    np.testing.assert_allclose(values, [0.1 * factor(t) for t in range(STEPS)], rtol=1e-13, atol=1e-16)


def test_step_lr_table_from_the_docstring():
    assert lrs_of(S.StepLR(sgd(1.0), step_size=2), 7) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 0.001])


def warmup_then_cosine(module, optimizer):
    warmup = module.LinearLR(optimizer, start_factor=0.25, total_iters=3)
    cosine = module.CosineAnnealingLR(optimizer, T_max=8)
    return module.SequentialLR(optimizer, [warmup, cosine], milestones=[3])


def test_sequential_lr_warms_up_then_starts_the_next_schedule_at_its_own_zero():
    values = lrs_of(warmup_then_cosine(S, sgd(0.1)), 11)
    warmup = [0.1 * (0.25 + 0.75 * t / 3) for t in range(3)]
    cosine = [0.1 * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(8)]
    np.testing.assert_allclose(values, warmup + cosine, rtol=1e-13, atol=1e-16)


def torch_lrs(torch, make, steps: int = STEPS) -> list:
    optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    scheduler = make(torch.optim.lr_scheduler, optimizer)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps):
            values.append(optimizer.param_groups[0]["lr"])
            assert scheduler.get_last_lr() == [values[-1]]
            scheduler.step()
    return values


@pytest.mark.parametrize("name", [*CASES, "warmup+cosine"])
def test_schedule_matches_torch(name):
    torch = pytest.importorskip("torch")
    make = warmup_then_cosine if name == "warmup+cosine" else CASES[name][0]
    np.testing.assert_allclose(lrs_of(make(S, sgd(0.1))), torch_lrs(torch, make), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name", [*CASES, "warmup+cosine"])
def test_state_dict_round_trip_mid_way_continues_exactly(name):
    """Stop after 5 steps, save as JSON, rebuild everything as a resumed run would, load, go on."""
    make = warmup_then_cosine if name == "warmup+cosine" else CASES[name][0]
    straight = lrs_of(make(S, sgd(0.1)))

    first = make(S, sgd(0.1))
    head = lrs_of(first, 5)
    saved_schedule = json.loads(json.dumps(first.state_dict()))
    saved_lr = first.optimizer.lr

    resumed_optimizer = sgd(0.1)
    resumed_optimizer.lr = saved_lr              # as optimizer.load_state_dict would set it
    resumed = make(S, resumed_optimizer)         # made from the lowered lr: load must fix base_lr
    resumed.load_state_dict(saved_schedule)
    assert resumed_optimizer.lr == saved_lr
    assert head + lrs_of(resumed, STEPS - 5) == straight


def test_the_optimizer_steps_with_the_scheduled_rate():
    p = Tensor(np.zeros(1), requires_grad=True)
    optimizer = optim.SGD([p], lr=1.0)
    scheduler = S.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = np.ones(1)
        optimizer.step()
        scheduler.step()
    assert p.data[0] == pytest.approx(-(1 + 0.5 + 0.25))


def test_loading_another_schedule_is_refused_and_loads_nothing():
    scheduler = S.StepLR(sgd(), step_size=3)
    with pytest.raises(ValueError, match=r"StepLR.load_state_dict: the saved schedule has \{'step_size': 4\}"):
        scheduler.load_state_dict(S.StepLR(sgd(), step_size=4).state_dict())
    with pytest.raises(ValueError, match="'name': 'CosineAnnealingLR'"):
        scheduler.load_state_dict(S.CosineAnnealingLR(sgd(), T_max=3).state_dict())
    with pytest.raises(ValueError, match="SequentialLR.load_state_dict: the saved schedule has milestones"):
        warmup_then_cosine(S, sgd()).load_state_dict({"name": "SequentialLR", "milestones": [4],
                                                      "schedulers": []})
    assert scheduler.last_epoch == 0


@pytest.mark.parametrize("make, message", [
    (lambda o: S.StepLR(o, step_size=0), "StepLR: step_size must be a positive integer, got 0"),
    (lambda o: S.CosineAnnealingLR(o, T_max=2.5), "CosineAnnealingLR: T_max must be a positive integer"),
    (lambda o: S.LinearLR(o, start_factor=0), r"LinearLR: start_factor must be in \(0, 1\]"),
    (lambda o: S.PolynomialLR(o, total_iters=-1), "PolynomialLR: total_iters must be"),
    (lambda o: S.StepLR(o, 2, last_epoch=3), "StepLR: last_epoch must be -1"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(o, 3)], milestones=[]),
     "SequentialLR: expected 1 milestones for 2 schedulers"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(sgd(), 3)], milestones=[2]),
     "SequentialLR: scheduler 1 must be a scheduler of the same optimizer"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make(sgd())


@pytest.mark.parametrize("schedule, expected", [
    ("none", [1.0] * 6),
    ("step", [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]),
    ("cosine", [(1 + math.cos(math.pi * t / 6)) / 2 for t in range(6)]),
    ("poly", [(1 - t / 6) ** 0.9 for t in range(6)]),
])
def test_make_schedule_without_warmup(schedule, expected):
    scheduler = S.make_schedule(sgd(1.0), schedule, epochs=6)
    if schedule == "none":
        assert scheduler is None
        return
    np.testing.assert_allclose(lrs_of(scheduler, 6), expected, rtol=1e-13, atol=1e-16)


def test_make_schedule_warms_up_then_starts_the_schedule_and_resumes_exactly():
    scheduler = S.make_schedule(sgd(1.0), "cosine", epochs=6, warmup_epochs=2)
    expected = [1 / 3, 2 / 3] + [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)]
    np.testing.assert_allclose(lrs_of(scheduler, 6), expected, rtol=1e-13)
    constant = S.make_schedule(sgd(1.0), "none", epochs=4, warmup_epochs=1)
    np.testing.assert_allclose(lrs_of(constant, 4), [0.5, 1, 1, 1], rtol=1e-13)

    first = S.make_schedule(sgd(1.0), "poly", epochs=6, warmup_epochs=2)
    head, saved = lrs_of(first, 3), json.loads(json.dumps(first.state_dict()))
    resumed = S.make_schedule(sgd(1.0), "poly", epochs=6, warmup_epochs=2)
    resumed.load_state_dict(saved)
    assert head + lrs_of(resumed, 3) == lrs_of(S.make_schedule(sgd(1.0), "poly", epochs=6, warmup_epochs=2), 6)


@pytest.mark.parametrize("schedule, warmup, message", [
    ("linear", 0, "--schedule must be one of none, step, cosine, poly, got 'linear'"),
    ("cosine", 6, r"--warmup-epochs \(6\) must be smaller than --epochs \(6\)"),
    ("cosine", -1, "--warmup-epochs must be an integer >= 0, got -1"),
])
def test_make_schedule_names_the_options(schedule, warmup, message):
    with pytest.raises(ValueError, match=message):
        S.make_schedule(sgd(), schedule, epochs=6, warmup_epochs=warmup)
