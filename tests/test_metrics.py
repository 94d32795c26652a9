"""Tests of tinyseg.metrics against confusion matrices worked out by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinyseg.metrics import ConfusionMatrix, format_table, scores_from_matrix

NAN = float("nan")

# A 2x4 image, 3 classes. Truth and prediction, pixel by pixel:
TRUTH = np.array([[0, 0, 1, 1],
                  [2, 2, 0, 255]])
PRED = np.array([[0, 1, 1, 1],
                 [2, 0, 0, 2]])
# Counting (true, predicted) pairs, the ignored last pixel left out:
#   (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,0)
HAND_MATRIX = np.array([[2, 1, 0],      # true 0: 2 right, 1 called "1"
                        [0, 2, 0],      # true 1: both right
                        [1, 0, 1]])     # true 2: 1 called "0", 1 right


def test_update_counts_pairs_as_worked_out_by_hand():
    confusion = ConfusionMatrix(3)
    confusion.update(PRED, TRUTH)
    assert confusion.matrix.dtype == np.int64
    assert np.array_equal(confusion.matrix, HAND_MATRIX)


def test_scores_of_the_hand_example():
    confusion = ConfusionMatrix(3)
    confusion.update(PRED, TRUTH)
    scores = confusion.compute()
    # class 0: TP 2, FN 1, FP 1 -> IoU 2/4, dice 4/6, acc 2/3
    # class 1: TP 2, FN 0, FP 1 -> IoU 2/3, dice 4/5, acc 1
    # class 2: TP 1, FN 1, FP 0 -> IoU 1/2, dice 2/3, acc 1/2
    np.testing.assert_allclose(scores["class_iou"], [2 / 4, 2 / 3, 1 / 2])
    np.testing.assert_allclose(scores["class_dice"], [4 / 6, 4 / 5, 2 / 3])
    np.testing.assert_allclose(scores["class_accuracy"], [2 / 3, 1, 1 / 2])
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert scores["mean_iou"] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert scores["mean_dice"] == pytest.approx((4 / 6 + 4 / 5 + 2 / 3) / 3)
    assert scores["mean_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert np.array_equal(scores["confusion"], HAND_MATRIX)


def test_absent_class_is_left_out_of_the_mean():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])          # class 2 appears nowhere
    confusion = ConfusionMatrix(3)
    confusion.update(pred, truth)
    scores = confusion.compute()
    assert np.isnan(scores["class_iou"][2]) and np.isnan(scores["class_dice"][2])
    assert np.isnan(scores["class_accuracy"][2])
    # class 0: IoU 1/2; class 1: IoU 2/3. Counting class 2 as 0 would give 0.389.
    assert scores["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_class_predicted_but_absent_from_truth_counts_as_zero():
    truth = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 2, 1])          # claims class 2, which is not there
    confusion = ConfusionMatrix(3)
    confusion.update(pred, truth)
    scores = confusion.compute()
    assert scores["class_iou"][2] == 0.0
    assert np.isnan(scores["class_accuracy"][2])       # no class 2 pixel to find
    assert scores["mean_iou"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_ignored_pixels_count_for_nothing():
    confusion = ConfusionMatrix(3)
    confusion.update(PRED, TRUTH)
    other_pred = PRED.copy()
    other_pred[1, 3] = 1                   # change the prediction on the ignored pixel only
    other = ConfusionMatrix(3)
    other.update(other_pred, TRUTH)
    assert np.array_equal(confusion.matrix, other.matrix)
    assert confusion.matrix.sum() == 7
    custom = ConfusionMatrix(3, ignore_index=2)
    custom.update(PRED, np.where(TRUTH == 255, 0, TRUTH))
    assert custom.matrix[2].sum() == 0 and custom.matrix.sum() == 6


def test_batches_accumulate_into_one_matrix_and_reset_clears_it():
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 4, (2, 6, 5, 5))
    whole, halves = ConfusionMatrix(4), ConfusionMatrix(4)
    whole.update(pred, truth)
    halves.update(pred[:3], truth[:3])
    halves.update(pred[3:], truth[3:])
    assert np.array_equal(whole.matrix, halves.matrix)
    halves.reset()
    assert halves.matrix.sum() == 0
    assert np.isnan(halves.compute()["mean_iou"]) and np.isnan(halves.compute()["pixel_accuracy"])


def test_update_rejects_bad_input():
    confusion = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        confusion.update(np.zeros((2, 3), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="pred holds the class 3"):
        confusion.update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="target holds the class 7"):
        confusion.update(np.array([0]), np.array([7]))


def test_format_table_lists_classes_and_summary():
    confusion = ConfusionMatrix(3)
    confusion.update(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]))
    table = format_table(confusion.compute(), ["background", "disc", "square"])
    lines = table.splitlines()
    assert lines[0].split() == ["class", "IoU", "dice", "acc"]
    assert lines[1].split() == ["background", "0.500", "0.667", "0.500"]
    assert lines[3].split() == ["square", "-", "-", "-"]             # absent: no score
    assert "mean IoU" in table and "0.583" in table                # (1/2 + 2/3) / 2
    assert "pixel accuracy" in table and "0.750" in table
    with pytest.raises(ValueError, match="class names"):
        format_table(confusion.compute(), ["only one"])


# ---------------------------------------------------------------- invariants (hypothesis)

labels = st.integers(2, 5).flatmap(lambda c: st.tuples(
    st.just(c),
    arrays(np.int64, (3, 4, 4), elements=st.integers(0, c - 1)),
    arrays(np.int64, (3, 4, 4), elements=st.sampled_from(list(range(c)) + [255]))))


@settings(max_examples=60, deadline=None)
@given(labels)
def test_scores_are_fractions_and_dice_is_at_least_iou(case):
    num_classes, pred, truth = case
    confusion = ConfusionMatrix(num_classes)
    confusion.update(pred, truth)
    scores = confusion.compute()
    assert confusion.matrix.sum() == (truth != 255).sum()
    iou, dice = scores["class_iou"], scores["class_dice"]
    present = ~np.isnan(iou)
    assert np.array_equal(present, ~np.isnan(dice))
    assert ((iou[present] >= 0) & (iou[present] <= 1)).all()
    assert (dice[present] >= iou[present] - 1e-12).all()
    np.testing.assert_allclose(dice[present], 2 * iou[present] / (1 + iou[present]))   # dice = 2J / (1 + J)


@settings(max_examples=60, deadline=None)
@given(labels)
def test_perfect_prediction_scores_one(case):
    num_classes, _, truth = case
    confusion = ConfusionMatrix(num_classes)
    confusion.update(np.where(truth == 255, 0, truth), truth)
    scores = confusion.compute()
    present = np.isin(np.arange(num_classes), truth)
    assert np.array_equal(~np.isnan(scores["class_iou"]), present)
    if present.any():
        assert scores["mean_iou"] == 1.0 and scores["pixel_accuracy"] == 1.0
        assert scores["mean_dice"] == 1.0 and scores["mean_accuracy"] == 1.0


def test_scores_from_matrix_of_nothing_are_nan():
    scores = scores_from_matrix(np.zeros((2, 2), int))
    assert np.isnan([scores["mean_iou"], scores["mean_dice"], scores["pixel_accuracy"]]).all()
