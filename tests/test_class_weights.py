"""Class weights: the median-frequency and inverse-frequency rules, and the --class-weights parser."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyseg.data import SegmentationDataset
from tinyseg.data.class_weights import (class_weights_for, class_weights_from_counts, format_class_weights,
                                        parse_class_weights)


def test_the_docstring_example():
    assert class_weights_from_counts(np.array([900, 90, 10])) == pytest.approx([0.1, 1.0, 9.0])
    assert class_weights_from_counts([900, 90, 10], "inverse_frequency") == pytest.approx(
        [1000 / 2700, 1000 / 270, 1000 / 30])


@pytest.mark.parametrize("rule", ["median_frequency", "inverse_frequency"])
@settings(max_examples=25)
@given(counts=st.lists(st.integers(1, 10**6), min_size=1, max_size=6))
def test_weighted_pixel_counts_are_balanced(rule, counts):
    """w_c n_c is the same for every class: each class gets an equal share of the weighted loss."""
    weighted = np.array(class_weights_from_counts(np.array(counts), rule)) * counts
    np.testing.assert_allclose(weighted, weighted[0], rtol=1e-12)


@pytest.mark.parametrize("rule", ["median_frequency", "inverse_frequency"])
def test_equal_counts_give_ones_and_absent_classes_get_one(rule):
    assert class_weights_from_counts([5, 5, 5], rule) == pytest.approx([1, 1, 1])
    with_gap, without = class_weights_from_counts([30, 0, 10], rule), class_weights_from_counts([30, 10], rule)
    assert with_gap[1] == 1.0                                   # no pixels: neutral weight
    assert [with_gap[0], with_gap[2]] == pytest.approx(without)  # the others as if it did not exist


def test_weights_from_a_datasets_pixel_counts():
    masks = [np.array([[0, 0, 0], [0, 1, 255]]), np.array([[0, 0, 1], [2, 2, 0]])]   # 0: 7, 1: 2, 2: 2
    dataset = SegmentationDataset([np.zeros((1, 2, 3))] * 2, masks, ["bg", "a", "b"])
    assert class_weights_from_counts(dataset.class_pixel_counts()) == pytest.approx([2 / 7, 1.0, 1.0])


@pytest.mark.parametrize("counts, rule, message", [
    ([0, 0], "median_frequency", "no labelled pixel"),
    ([1.5, 2], "median_frequency", "counts must be"),
    ([3, -1], "median_frequency", "counts must be"),
    ([3, 1], "enet", "rule must be one of"),
])
def test_bad_counts_and_rules(counts, rule, message):
    with pytest.raises(ValueError, match=message):
        class_weights_from_counts(np.array(counts), rule)


def test_parse_class_weights():
    assert parse_class_weights("1,2,5", 3) == [1.0, 2.0, 5.0]
    assert parse_class_weights(" 0.5 , 1e1", 2) == [0.5, 10.0]


@pytest.mark.parametrize("text, message", [
    ("1,2", "--class-weights: expected 3 comma-separated numbers .* got 2"),
    ("1,x,2", r"--class-weights: 'x' \(class 1\) is not a number"),
    ("1,0,2", "--class-weights: the weight of class 1 must be a positive number, got '0'"),
    ("1,-2,2", "the weight of class 1 must be a positive"),
    ("1,2,nan", "the weight of class 2 must be a positive"),
    ("1,2,inf", "the weight of class 2 must be a positive"),
])
def test_parse_errors_name_the_option(text, message):
    with pytest.raises(ValueError, match=message):
        parse_class_weights(text, 3)


def test_class_weights_for_each_option_and_the_log_lines():
    masks = [np.array([[0, 0, 0], [0, 1, 255]]), np.array([[0, 0, 0], [1, 1, 0]])]     # 0: 8, 1: 3, 2: 0
    dataset = SegmentationDataset([np.zeros((1, 2, 3))] * 2, masks, ["bg", "a", "b"])
    assert class_weights_for(None, dataset) is None and class_weights_for("none", dataset) is None
    assert class_weights_for("auto", dataset) == pytest.approx([(5.5 / 11) / (8 / 11), (5.5 / 11) / (3 / 11), 1.0])
    assert class_weights_for("1,2,3", dataset) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="--class-weights: expected 3"):
        class_weights_for("1,2", dataset)
    text = format_class_weights(dataset.class_names, [0.6875, 1.8333, 1.0], dataset.class_pixel_counts())
    assert text.splitlines()[1:] == ["bg                 0.6875  8", "a                  1.8333  3",
                                     "b                  1.0000  0  (no pixels: weight 1)"]
