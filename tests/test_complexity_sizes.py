"""Counting at any size from shapes (complexity/sizes.py) equals counting by running the image."""

import time

import pytest
from hypothesis import given, settings, strategies as st

from tinyseg.cli import main
from tinyseg.complexity.counting import forward_cost
from tinyseg.complexity.sizes import forward_cost_at, on_the_line
from tinyseg.models import FCN, SlidingWindow, UNet

MODELS = {
    "unet-pool-bn": lambda: UNet(2, 3, base_channels=2, depth=3, batch_norm=True),
    "unet-conv": lambda: UNet(1, 2, base_channels=2, depth=2, down="conv"),
    "unet-depth-0": lambda: UNet(1, 2, base_channels=2, depth=0),
    "fcn": lambda: FCN(3, 4, width=3, depth=2),
    "naive-as-fcn": lambda: SlidingWindow(3, 4, window=9, width=2, depth=3).to_fcn(),
}
BUILT = {name: build() for name, build in MODELS.items()}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(MODELS)), st.integers(1, 70), st.integers(1, 70))
def test_counting_from_shapes_equals_counting_by_running(name, height, width):
    model = BUILT[name]
    assert forward_cost_at(model, (height, width)) == forward_cost(model, (height, width))


def test_a_shape_off_its_line_is_refused_not_miscounted():
    with pytest.raises(ValueError, match="straight line"):
        on_the_line((1, 8), (1, 16), (1, 8), (1, 25), 3, 0, "the conv2d result")


def test_any_size_answers_at_once(capsys):
    started = time.perf_counter()
    assert main(["complexity", "--size", "100000", "100000"]) == 0
    assert time.perf_counter() - started < 30                     # minutes and 5 GB before, at 3000 x 4000
    assert "100000 x 100000" in capsys.readouterr().out
    assert main(["complexity", "--size", "0", "5"]) == 1
