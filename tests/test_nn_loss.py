"""nn.CrossEntropyLoss, nn.DiceLoss, nn.CrossEntropyDiceLoss: modules that call the functionals."""

from __future__ import annotations

import numpy as np
import pytest

from tinyseg import Tensor, backend, gradcheck, nn
from tinyseg import functional as F

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((2, 3, 4, 5))
TARGET = RNG.integers(0, 3, size=(2, 4, 5))
TARGET[0, 0] = 255                                              # a row of ignored pixels
WEIGHT = np.array([0.5, 1.0, 3.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_is_the_functional(reduction):
    module = nn.CrossEntropyLoss(weight=WEIGHT, ignore_index=255, reduction=reduction)
    expected = F.cross_entropy(Tensor(LOGITS), TARGET, weight=WEIGHT, ignore_index=255, reduction=reduction)
    np.testing.assert_array_equal(module(Tensor(LOGITS), TARGET).numpy(), expected.numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dice_loss_is_the_functional(reduction):
    module = nn.DiceLoss(weight=WEIGHT, ignore_index=255, smooth=0.5, reduction=reduction)
    expected = F.dice_loss(Tensor(LOGITS), TARGET, weight=WEIGHT, ignore_index=255, smooth=0.5,
                           reduction=reduction)
    np.testing.assert_array_equal(module(Tensor(LOGITS), TARGET).numpy(), expected.numpy())


def test_cross_entropy_dice_loss_is_their_weighted_sum_with_a_correct_gradient():
    module = nn.CrossEntropyDiceLoss(weight=WEIGHT, ignore_index=255, dice_weight=0.5)
    x = Tensor(LOGITS)
    ce = F.cross_entropy(x, TARGET, weight=WEIGHT, ignore_index=255).item()
    dice = F.dice_loss(x, TARGET, weight=WEIGHT, ignore_index=255).item()
    assert module(x, TARGET).item() == pytest.approx(ce + 0.5 * dice, rel=1e-12)
    small = TARGET[:1, :2]                                       # (1, 2, 5), one row ignored
    assert gradcheck(lambda logits: module(logits, small), Tensor(LOGITS[:1, :, :2], requires_grad=True))


def test_defaults_are_pytorchs():
    ce, dice = nn.CrossEntropyLoss(), nn.DiceLoss()
    assert (ce.weight, ce.ignore_index, ce.reduction) == (None, -100, "mean")
    assert (dice.weight, dice.ignore_index, dice.smooth, dice.reduction) == (None, -100, 1.0, "mean")


def test_weight_is_a_buffer_that_moves_with_to():
    module = nn.DiceLoss(weight=[1.0, 2.0, 3.0])
    assert [name for name, _ in module.named_buffers()] == ["weight"]
    assert module.to("cpu").weight.device == "cpu"
    assert "weight=[1.0, 2.0, 3.0]" in repr(module)


@pytest.mark.gpu
def test_weight_moves_to_the_gpu_and_the_loss_runs_there():
    module = nn.CrossEntropyDiceLoss(weight=WEIGHT, ignore_index=255).to("cuda")
    loss = module(Tensor(LOGITS, device="cuda"), backend.to_device(TARGET, "cuda"))
    assert loss.device == "cuda"


def test_cross_entropy_loss_matches_torch():
    torch = pytest.importorskip("torch")
    ours = nn.CrossEntropyLoss(weight=WEIGHT, ignore_index=255)(Tensor(LOGITS), TARGET).item()
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(WEIGHT), ignore_index=255)(
        torch.tensor(LOGITS), torch.tensor(TARGET)).item()
    assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("name, kind", [("ce", nn.CrossEntropyLoss), ("dice", nn.DiceLoss),
                                        ("ce+dice", nn.CrossEntropyDiceLoss), ("focal", nn.FocalLoss)])
def test_make_loss_builds_the_named_criterion(name, kind):
    from tinyseg.nn.loss import make_loss
    criterion = make_loss(name, weight=WEIGHT, ignore_index=255)
    assert type(criterion) is kind and criterion.ignore_index == 255
    np.testing.assert_array_equal(criterion.weight.numpy(), WEIGHT)


def test_make_loss_names_the_option():
    from tinyseg.nn.loss import make_loss
    with pytest.raises(ValueError, match=r"--loss must be one of ce, dice, ce\+dice, focal, got 'tversky'"):
        make_loss("tversky")
