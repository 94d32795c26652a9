"""What recording the gradient norms costs a training epoch (train's grad_norm/ columns).

    python benchmarks/bench_gradient_norms.py                 # the default run's epoch, 5 pairs
    python benchmarks/bench_gradient_norms.py --steps 20      # 20 steps per timing (quicker)

Two measurements of the same thing, both in one process:

1. Alternating epochs. train_one_epoch of the default `python -m tinyseg
   train` (U-Net base 16, depth 3, batch norm, 800 shapes of 64 x 64,
   batch 8, Adam), run with and without a GradientNorms, turn about, on the
   same model and data; the medians and their ratio. The ratio is what
   matters: a burst of load from elsewhere slows both arms alike.
2. The added work alone: GradientNorms.add() timed on the gradients one
   backward left (median of many calls), times the steps of an epoch, over
   the epoch's median time without it. Less noisy than (1), which must
   find a difference of 1% between two numbers that vary by more.

The target (issue 21): at most 3% of an epoch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.data import DataLoader  # noqa: E402
from tinyseg.gradient_norms import GradientNorms  # noqa: E402
from tinyseg.models import build_model  # noqa: E402
from tinyseg.train import TrainConfig, build_datasets, make_loader, train_one_epoch  # noqa: E402
from tinyseg.training_run import channel_normalization, make_optimizer, model_config  # noqa: E402


class FirstSteps:
    """The first `steps` batches of a loader (all of them when steps is 0), as train_one_epoch reads it."""

    def __init__(self, loader: DataLoader, steps: int):
        self.loader, self.steps = loader, steps or len(loader)

    def __len__(self) -> int:
        return min(self.steps, len(self.loader))

    def __iter__(self):
        for step, batch in enumerate(self.loader):
            if step == len(self):
                return
            yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="epochs timed with and without, alternating")
    parser.add_argument("--steps", type=int, default=0, help="steps per timing (0: a whole epoch)")
    args = parser.parse_args()
    config = TrainConfig(check_every=10)
    train_set, _ = build_datasets(config)
    model = build_model(model_config(config, train_set.in_channels, train_set.num_classes))
    optimizer = make_optimizer(config, list(model.parameters()))
    loader = FirstSteps(make_loader(train_set, config), args.steps)
    normalization = channel_normalization(train_set)
    rng = np.random.default_rng(0)

    def epoch(norms) -> float:
        start = time.perf_counter()
        train_one_epoch(model, loader, optimizer, config, 0, rng, False, normalization=normalization,
                        gradient_norms=norms)
        if norms is not None:
            norms.epoch_means()                                   # the one read per epoch
        return time.perf_counter() - start

    epoch(None)                                                   # warm-up
    plain, recorded = [], []
    for pair in range(args.pairs):
        first, second = (None, GradientNorms(model)), (GradientNorms(model), None)
        for norms in (first if pair % 2 == 0 else second):
            (plain if norms is None else recorded).append(epoch(norms))
    print(f"{len(loader)} steps per timing, {args.pairs} of each, alternating (medians):")
    print(f"  without gradient norms  {statistics.median(plain):8.3f} s   {sorted(round(t, 2) for t in plain)}")
    print(f"  with gradient norms     {statistics.median(recorded):8.3f} s   "
          f"{sorted(round(t, 2) for t in recorded)}")
    print(f"  ratio {statistics.median(recorded) / statistics.median(plain):.4f}")

    norms = GradientNorms(model)                                  # the parameters hold the last gradients
    calls = []
    for _ in range(200):
        start = time.perf_counter()
        norms.add()
        calls.append(time.perf_counter() - start)
    added = statistics.median(calls) * len(loader)
    print(f"  GradientNorms.add(): {statistics.median(calls) * 1e3:.3f} ms a step, {added:.3f} s per "
          f"{len(loader)} steps = {added / statistics.median(plain):.2%} of the time without")


if __name__ == "__main__":
    main()
