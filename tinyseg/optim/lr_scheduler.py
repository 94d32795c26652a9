"""Learning-rate schedules with PyTorch's names: StepLR, CosineAnnealingLR, PolynomialLR, LinearLR, SequentialLR.

A schedule changes `optimizer.lr` as training goes on. It counts its own
steps in `last_epoch` (PyTorch's name, whatever the unit) and, on each
`step()`, sets the learning rate for the next stretch of training:

    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = CosineAnnealingLR(optimizer, T_max=10)    # lr = 0.1 already (t = 0)
    for epoch in range(10):
        train_one_epoch(...)                              # uses optimizer.lr
        scheduler.step()                                  # t = epoch + 1: the next epoch's lr

Each schedule is a closed formula of t = last_epoch and the starting rate
base_lr (the optimizer's lr when the first schedule was made):

    StepLR(step_size, gamma=0.1)          base_lr * gamma ** (t // step_size)
    CosineAnnealingLR(T_max, eta_min=0)   eta_min + (base_lr - eta_min) * (1 + cos(pi t / T_max)) / 2
    PolynomialLR(total_iters=5, power=1)  base_lr * (1 - min(t, total_iters) / total_iters) ** power
    LinearLR(start_factor=1/3,            base_lr * (start + (end - start) * min(t, total_iters) / total_iters)
             end_factor=1, total_iters=5)

    t:          0     1     2     3     4     5     6 ...
    StepLR(2)   1     1     0.1   0.1   0.01  0.01  0.001      (x base_lr)
    LinearLR    1/3   7/15  3/5   11/15 13/15 1     1          (warm-up over 5 steps)

SequentialLR(optimizer, [warmup, main], milestones=[5]) runs `warmup` for
t < 5 and then `main` from ITS t = 0: a warm-up chained into a decay, as
in PyTorch. `make_schedule(optimizer, "cosine", epochs, warmup_epochs)`
builds the schedules that `tinyseg train --schedule` names.

PyTorch computes most of these recursively (each lr from the previous one);
the closed forms give the same numbers up to rounding, and make a resumed
schedule exact: `state_dict()` is a small JSON-able dict (the class name,
base_lr, last_epoch and the arguments), and `load_state_dict()` restores it
and sets `optimizer.lr` to the rate of the restored step. Make the
schedule the same way, then load: the loaded state wins.

Like PyTorch, the first schedule made for an optimizer records
`optimizer.initial_lr` (its lr at that moment) and every schedule takes
base_lr from it, so that the second schedule of a SequentialLR does not
start from the first one's already lowered rate.
"""

from __future__ import annotations

import bisect
import math


class LRScheduler:
    """Base class: keeps base_lr and last_epoch; subclasses define lr_at(t)."""

    argument_names: tuple = ()          # constructor arguments saved in state_dict

    def __init__(self, optimizer, last_epoch: int = -1):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: optimizer must have an lr attribute, "
                            f"got {type(optimizer).__name__}")
        if last_epoch != -1:
            raise ValueError(f"{type(self).__name__}: last_epoch must be -1 (start afresh); "
                             "to resume, use load_state_dict()")
        self.optimizer = optimizer
        if not hasattr(optimizer, "initial_lr"):
            optimizer.initial_lr = float(optimizer.lr)
        self.base_lr = float(optimizer.initial_lr)
        self.last_epoch = -1
        self.step()                                           # t = 0: the starting rate

    def lr_at(self, t: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define lr_at(t)")

    def step(self) -> None:
        """Move on one step (one epoch, or one iteration) and set optimizer.lr."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> list:
        """[the rate set by the last step()]: a list, as PyTorch has one per parameter group."""
        return [self.lr_at(self.last_epoch)]

    def state_dict(self) -> dict:
        """{"name", "base_lr", "last_epoch", and the arguments}: plain numbers, JSON-able."""
        state = {"name": type(self).__name__, "base_lr": self.base_lr, "last_epoch": self.last_epoch}
        state.update({name: getattr(self, name) for name in self.argument_names})
        return state

    def check_state(self, state: dict) -> None:
        """Raise ValueError unless `state` was saved by this kind of schedule with these arguments."""
        expected = {"name": type(self).__name__,
                    **{name: getattr(self, name) for name in self.argument_names}}
        different = {key: state.get(key) for key, value in expected.items() if state.get(key) != value}
        missing = [key for key in ("base_lr", "last_epoch") if key not in state]
        if different or missing:
            ours = {key: expected[key] for key in different}
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved schedule has "
                             f"{different} where this one has {ours}"
                             + (f", and lacks {missing}" if missing else "") + "; nothing was loaded")

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() saved (it must be the same schedule) and set optimizer.lr."""
        self.check_state(state)
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        self.optimizer.lr = self.lr_at(self.last_epoch)


def positive_int(value, name: str, schedule: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{schedule}: {name} must be a positive integer, got {value!r}")
    return int(value)


class StepLR(LRScheduler):
    """Multiply the rate by gamma every step_size steps: base_lr * gamma ** (t // step_size)."""

    argument_names = ("step_size", "gamma")

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = positive_int(step_size, "step_size", "StepLR")
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from base_lr down to eta_min over T_max steps (and back up after, as PyTorch)."""

    argument_names = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = positive_int(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class PolynomialLR(LRScheduler):
    """Decay to 0 over total_iters steps: base_lr * (1 - t / total_iters) ** power, then 0."""

    argument_names = ("total_iters", "power")

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
        self.total_iters = positive_int(total_iters, "total_iters", "PolynomialLR")
        self.power = float(power)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> float:
        return self.base_lr * (1 - min(t, self.total_iters) / self.total_iters) ** self.power


class LinearLR(LRScheduler):
    """Scale base_lr by a factor going linearly from start_factor to end_factor over total_iters steps.

    The usual warm-up: LinearLR(optimizer, start_factor=0.1, total_iters=3) runs
    at 0.1, 0.4, 0.7 and then 1.0 times the base rate.
    """

    argument_names = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if not (0 < start_factor <= 1 and 0 <= end_factor <= 1):
            raise ValueError(f"LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1], "
                             f"got {start_factor!r} and {end_factor!r}")
        self.start_factor = float(start_factor)
        self.end_factor = float(end_factor)
        self.total_iters = positive_int(total_iters, "total_iters", "LinearLR")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> float:
        progress = min(t, self.total_iters) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class SequentialLR(LRScheduler):
    """Run schedulers[0] until milestones[0], then schedulers[1] from its own t = 0, and so on.

    SequentialLR(optimizer, [LinearLR(optimizer, 0.1, total_iters=2),
                             CosineAnnealingLR(optimizer, T_max=8)], milestones=[2])
    warms up for 2 steps and then follows the cosine for 8.
    """

    def __init__(self, optimizer, schedulers: list, milestones: list, last_epoch: int = -1):
        schedulers = list(schedulers)
        milestones = [int(m) for m in milestones]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected {len(schedulers) - 1} milestones for "
                             f"{len(schedulers)} schedulers, got {milestones}")
        if milestones != sorted(milestones) or any(m < 1 for m in milestones):
            raise ValueError(f"SequentialLR: milestones must be increasing positive integers, "
                             f"got {milestones}")
        for i, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler) or scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: scheduler {i} must be a scheduler of the same optimizer")
        self.schedulers = schedulers
        self.milestones = milestones
        super().__init__(optimizer, last_epoch)

    def current(self, t: int) -> tuple:
        """(the scheduler in charge at step t, t counted from its milestone)."""
        index = bisect.bisect_right(self.milestones, t)
        start = self.milestones[index - 1] if index > 0 else 0
        return self.schedulers[index], t - start

    def lr_at(self, t: int) -> float:
        scheduler, local_t = self.current(t)
        return scheduler.lr_at(local_t)

    def step(self) -> None:
        self.last_epoch += 1
        scheduler, local_t = self.current(self.last_epoch)
        scheduler.last_epoch = local_t                        # so its own get_last_lr() agrees
        self.optimizer.lr = scheduler.lr_at(local_t)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["milestones"] = list(self.milestones)
        state["schedulers"] = [scheduler.state_dict() for scheduler in self.schedulers]
        return state

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("schedulers", [])
        if state.get("milestones") != self.milestones or len(saved) != len(self.schedulers):
            raise ValueError(f"SequentialLR.load_state_dict: the saved schedule has milestones "
                             f"{state.get('milestones')} and {len(saved)} schedulers, this one "
                             f"{self.milestones} and {len(self.schedulers)}; nothing was loaded")
        for scheduler, scheduler_state in zip(self.schedulers, saved):
            scheduler.check_state(scheduler_state)
        for scheduler, scheduler_state in zip(self.schedulers, saved):
            scheduler.load_state_dict(scheduler_state)
        super().load_state_dict(state)


# ----------------------------------------------------------------- the training command's choices
SCHEDULES = ("none", "step", "cosine", "poly")
POLY_POWER = 0.9                       # DeepLab's "poly" schedule


def make_schedule(optimizer, schedule: str, epochs: int, warmup_epochs: int = 0):
    """The schedule of `tinyseg train --schedule S --warmup-epochs W`, stepped once per epoch; or None.

    With E = epochs, W = warmup_epochs and E - W epochs after the warm-up:

        warm-up   LinearLR from 1/(W+1) to 1 over W epochs: (1, 2, ..., W) / (W+1), then 1
        "none"    the base rate throughout (None when W = 0: nothing to schedule)
        "step"    StepLR(step_size=max(1, (E-W) // 3), gamma=0.1): / 10 after each third
        "cosine"  CosineAnnealingLR(T_max=E-W): from the base rate down towards 0
        "poly"    PolynomialLR(total_iters=E-W, power=0.9)

    chained by SequentialLR(..., milestones=[W]) when W > 0. Call it before
    loading a checkpoint into the optimizer, so base_lr is the configured rate.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
        raise ValueError(f"--warmup-epochs must be an integer >= 0, got {warmup_epochs!r}")
    if warmup_epochs and warmup_epochs >= epochs:
        raise ValueError(f"--warmup-epochs ({warmup_epochs}) must be smaller than --epochs ({epochs})")
    remaining = epochs - warmup_epochs
    if schedule == "step":
        main = StepLR(optimizer, step_size=max(1, remaining // 3), gamma=0.1)
    elif schedule == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=remaining)
    elif schedule == "poly":
        main = PolynomialLR(optimizer, total_iters=remaining, power=POLY_POWER)
    else:
        main = StepLR(optimizer, step_size=1, gamma=1.0) if warmup_epochs else None   # constant
    if not warmup_epochs:
        return main
    warmup = LinearLR(optimizer, start_factor=1 / (warmup_epochs + 1), total_iters=warmup_epochs)
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_epochs])
