"""Data parallelism on the CPU's cores: each core runs the whole step for its share of the batch.

    loss = loss_and_gradients(model, images, target, criterion)    # train.py's step, which runs

    if splits_over_cores(model, criterion, images):
        loss = backward_in_shares(model, images, target, criterion)   # .grad filled as by the
    else:                                                             # plain step:
        loss = model.training_loss(images, target, criterion, rng)   # criterion(model(images), target)
        loss.backward()

The operators already cut each batch over the cores (functional/sample_threads.py):
every convolution hands half its samples to the other core and waits for them
back, about 45 times in a U-Net training step, and the small operators run on
one core. On the 2-core Intel Xeon measured, a hand-over costs 100-250 us (a
core that went idle wakes slowly in a virtual machine) and the two halves of
an operator end up to a millisecond apart (benchmarks/results/kernels.md).
Here each core takes its share of the samples through the whole forward and
backward pass, and the shares meet once, at the end:

    share k:  loss_k = (criterion summed over its samples) / D,   g_k = d loss_k / d weights
    loss = loss_0 + loss_1 + ...          d loss / d weights = g_0 + g_1 + ...   (in share order)

D is the whole batch's mean divisor (its labelled pixels, each counted by its
class weight: F.mean_divisor), so the shares' losses add up to the batch's
mean loss and their gradients to its gradient: the numbers of the plain step,
added in another order. Sums in share order keep the result independent of
which core finished first.

Where the shares run: on Linux, share 0 in this process and the others in
worker processes that hold a copy of the model (share_processes.py),
because threads of one process take turns at Python's lock and processes do
not (on the 2-core Intel Xeon the U-Net step alone took 0.85-0.91 of its time,
an epoch of the README's run 0.78: benchmarks/results/kernels.md); elsewhere on
threads of this process (steps_in_threads). Both give the same numbers.

Batch norm normalises by the whole batch's statistics: its layers in each
share hand the others their samples' sums and wait for theirs
(sample_threads.whole_batch: through pipes between processes, at a barrier
between threads), so every share normalises by the same numbers, those of the
batch in one piece. A share that fails lets the others go, and its error is
raised here.

Where it applies (splits_over_cores): a loss that is a sum over pixels
(nn.PixelLoss: cross-entropy, focal loss; Dice is a ratio over the whole batch,
so its shares do not add up), a model whose loss is criterion(model(images),
target) (not the naive model's windows), NumPy arrays, and more than one
core (sample_threads.shares_of, whole_steps: at any sample size, as a share's
whole step is worth its one hand-over).
"""

from __future__ import annotations

import threading
import warnings

from tinyseg import autograd, backend, recording, share_processes
from tinyseg.functional.loss import check_labels
from tinyseg.functional.sample_threads import (CPUS, BatchMeetings, in_order_sum, meeting_as, on_cpu,
                                               over_samples, run_share, shares_of)
from tinyseg.models.base import SegmentationModel
from tinyseg.nn.layers import BatchNorm2d
from tinyseg.nn.loss import PixelLoss
from tinyseg.tensor import Tensor


def loss_and_gradients(model, images: Tensor, target, criterion, rng=None) -> Tensor:
    """model.training_loss(images, target, criterion, rng), its gradients added into the weights'
    .grad: by backward_in_shares where splits_over_cores, else by loss.backward()."""
    if splits_over_cores(model, criterion, images):
        return backward_in_shares(model, images, target, criterion)
    loss = model.training_loss(images, target, criterion, rng)
    loss.backward()
    return loss


def splits_over_cores(model, criterion, images: Tensor) -> bool:
    """backward_in_shares gives this step's loss and gradients (the conditions in the module's docstring)."""
    whole_images = (isinstance(model, SegmentationModel)
                    and type(model).training_loss is SegmentationModel.training_loss)
    learns = any(p.requires_grad for p in model.parameters())
    shares = shares_of(images.data, whole_steps=True)
    return (learns and isinstance(criterion, PixelLoss) and criterion.reduction == "mean" and whole_images
            and autograd.is_grad_enabled() and not recording.is_recording() and len(shares) > 1
            and batch_norm_fits(model, images.shape[2:], min(stop - start for start, stop in shares)))


def batch_norm_fits(model, size: tuple, samples: int) -> bool:
    """A share of `samples` images of `size` gives each training batch norm more than one value a
    channel, which its checks ask of the input in its hands (the whole batch's statistics are
    what it computes)."""
    trains = any(isinstance(m, BatchNorm2d) and m.training for m in model.modules())
    smallest = model.smallest_normalized_map(*size)
    return not trains or smallest is None or samples * smallest > 1


def backward_in_shares(model, images: Tensor, target, criterion: PixelLoss) -> Tensor:
    """criterion(model(images), target) and its backward, each core on its share of the samples.

    images (N, C, H, W), target (N, H, W). Adds d loss / d each parameter into
    its .grad, as loss.backward() does (zero_grad first, as there), and returns
    the loss, a scalar Tensor with no graph behind it. Check splits_over_cores first.
    """
    model.check_input(images)                       # errors name the batch's shapes, not a share's
    logits_shape = (len(images), model.num_classes) + tuple(images.shape[2:])
    target = check_labels(type(criterion).__name__, logits_shape, images.device, target, criterion.ignore_index)
    weights = [p for p in model.parameters() if p.requires_grad]
    divisor = criterion.mean_divisor(target, images.dtype)              # the whole batch's
    shares = shares_of(images.data, whole_steps=True)
    results = None
    if share_processes.AVAILABLE:
        try:
            results = steps_in_processes(model, weights, images.data, target, criterion, divisor, shares)
        except share_processes.ForkRefused as refused:       # before any share ran
            share_processes.AVAILABLE = False                 # for the rest of this process
            warnings.warn(f"{refused}: the shares of each step run on threads from now on", RuntimeWarning)
    if results is None:
        results = steps_in_threads(model, weights, images.data, target, criterion, divisor, shares)
    losses, share_grads = zip(*results)
    for weight, grads in zip(weights, zip(*share_grads)):
        if all(g is None for g in grads):                              # no path reaches this weight
            continue
        total = in_order_sum([g for g in grads if g is not None])      # each share's, in share order
        weight.grad = total if weight.grad is None else weight.grad + total
    return Tensor(in_order_sum(list(losses)))


def share_step(model, weights: list, images, target, criterion: PixelLoss, divisor) -> tuple:
    """(loss array, [d loss / d weight]) of one share: images (n, C, H, W) and target (n, H, W) its
    samples, the loss its part of the whole batch's mean (criterion.part_of_mean, divisor D)."""
    loss = criterion.part_of_mean(model(Tensor(images)), target, divisor)
    return loss.data, autograd.gradients(loss, weights)


def steps_in_processes(model, weights: list, images, target, criterion, divisor, shares: list) -> list:
    """[(loss, gradients)] of each share: share 0 on this thread, the others in worker processes."""
    def own_step():
        with backend.blas_threads(1), on_cpu(CPUS[0]):
            return run_share(lambda start, stop: share_step(model, weights, images[start:stop],
                                                            target[start:stop], criterion, divisor), *shares[0])

    return share_processes.run_step(model, share_step, shares, own_step,
                                    lambda start, stop: (images[start:stop], target[start:stop], criterion,
                                                         divisor))


def steps_in_threads(model, weights: list, images, target, criterion, divisor, shares: list) -> list:
    """[(loss, gradients)] of each share, each share on a thread of this process."""
    meetings = BatchMeetings(shares)

    def share(start, stop):
        try:
            with meeting_as(meetings, start):
                return share_step(model, weights, images[start:stop], target[start:stop], criterion, divisor)
        except threading.BrokenBarrierError:        # another share failed first: over_samples raises
            return None                             # its error, not this one
        except BaseException:
            meetings.abort()                        # the shares waiting at a meeting go on, and stop
            raise

    return over_samples(share, images, whole_steps=True)
