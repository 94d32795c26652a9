"""DataLoader: a dataset cut into shuffled, optionally cropped and augmented, batches.

Training sees the data in mini-batches. One epoch is one pass over every
example, in an order shuffled afresh each epoch:

    epoch 0:  order 7 2 9 0 4 ...   -> batches [7 2 9 0] [4 ...] ...
    epoch 1:  order 3 8 1 6 0 ...   -> batches [3 8 1 6] [0 ...] ...

Reproducible order. Everything random about epoch e (its order, its flips
and its crops) comes from one generator seeded with the pair (seed, e):

    rng = np.random.default_rng([seed, e])

So the batches of epoch e depend on nothing but (seed, e): not on how many
epochs ran before, nor on the process. A training run resumed at epoch 5
calls `loader.set_epoch(5)` and sees exactly the batches the uninterrupted
run would have seen: the seed and the epoch, all a checkpoint needs for
this, are in it already (train.py sets the epoch before every pass). The
epoch counter moves on by one each time a pass over the loader completes.

Augmentation (augment=, a policy of augment.py, or True/False as before):
each example is changed, after its crop, by augment.augment_pair, image and
mask alike. A policy of flips alone takes them from the epoch's plan (each
example flipped left-right with probability 1/2 and upside-down with
probability 1/2); a policy that draws more numbers draws all of them, its
flips too, from the example's own generator example_rng(seed, e, i). Both
depend on nothing but (seed, e, i), so a resumed run sees the same changes.

Random crops (crop=(h, w)): photographs differ in size and are often too
large to train on whole, so each example is cut to one h x w window per
epoch, at a place drawn from the same (seed, e) generator: the same crop
of image and mask, and the same crops again in a resumed run. The corner
is drawn as a fraction u in [0, 1) of the room there is,

    top = floor(u * (H - h + 1))      (0 .. H - h, each equally likely)

so the plan does not need the image sizes, and lazily read images are not
opened to make it. An image smaller than the crop is padded to it (image
0, mask 255) at the bottom and right. The crop numbers are drawn after the
order and the flips, so a loader without crops sees the very same plan.

Batches stack examples into (B, C, H, W) images and (B, H, W) masks. If the
examples differ in size, each is padded at the bottom and right to the
largest H and W of its batch: images with 0, masks with 255 ("ignore"), so
the padding counts neither in the loss nor in the metrics.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from tinyseg.data.augment import as_policy, augment_pair, crop_pair, example_rng
from tinyseg.data.dataset import IGNORE_INDEX


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size` (image, mask) pairs.

    Each batch is (images float32 (B, C, H, W), masks int64 (B, H, W)), NumPy
    arrays on the host. `len(loader)` is the number of batches per epoch; the
    last batch is smaller unless drop_last=True, which leaves it out.
    """

    def __init__(self, dataset, batch_size: int = 16, shuffle: bool = True, seed: int = 0,
                 augment: str | bool = "none", drop_last: bool = False, crop: tuple[int, int] | None = None):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if crop is not None:
            if len(crop) != 2 or any(int(side) != side or side < 1 for side in crop):
                raise ValueError(f"DataLoader: crop must be two positive integers (H, W), got {crop!r}")
            crop = (int(crop[0]), int(crop[1]))
        self.crop = crop
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.augment = as_policy(augment)
        self.drop_last = drop_last
        self.epoch = 0

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return -(-len(self.dataset) // self.batch_size)              # ceil

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass over the loader be epoch `epoch`."""
        self.epoch = int(epoch)

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The random choices of `epoch`, from (seed, epoch) alone.

        Returns (order int64 (N,): the example indices in the order they are
        served, flips bool (N, 2): [horizontal, vertical] for example i,
        corners float (N, 2) in [0, 1): [u_top, u_left] of example i's crop,
        or None without crop). Order and flips are always drawn, so turning
        shuffle or augment off leaves the other one unchanged; the corners
        are drawn last, so the order and flips are the same with or without.
        """
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.dataset)
        order = rng.permutation(n)
        flips = rng.random((n, 2)) < 0.5
        corners = rng.random((n, 2)) if self.crop is not None else None
        if not self.shuffle:
            order = np.arange(n)
        return order, flips, corners

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order, flips, corners = self.epoch_plan(self.epoch)
        for batch in range(len(self)):
            chosen = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            examples = [self.example(i, flips[i], None if corners is None else corners[i], self.epoch)
                        for i in chosen]
            yield collate(examples)
        self.epoch += 1                                              # only after a full pass

    def example(self, index: int, flip, corner=None, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Example `index`, cropped at `corner` (when cropping), then augmented under the policy.

        flip: the plan's (horizontal, vertical) for this example, used by a
        policy that only flips; others draw from example_rng(seed, epoch, index).
        """
        image, mask = self.dataset[index]                            # (C, H, W), (H, W)
        if self.crop is not None:
            image, mask = crop_pair(image, mask, self.crop, corner)
        return augment_pair(image, mask, example_rng(self.seed, epoch, index), self.augment, flips=flip)


def collate(examples) -> tuple[np.ndarray, np.ndarray]:
    """Stack (image (C, H, W), mask (H, W)) pairs into (B, C, H, W) float32 and (B, H, W) int64.

    Examples smaller than the largest of the batch are padded at the bottom
    and right: images with 0, masks with IGNORE_INDEX (255).
    """
    channels = {image.shape[0] for image, _ in examples}
    if len(channels) != 1:
        raise ValueError(f"collate: all images of a batch need the same channel count, "
                         f"got {sorted(channels)}")
    height = max(image.shape[1] for image, _ in examples)
    width = max(image.shape[2] for image, _ in examples)
    images = np.zeros((len(examples), channels.pop(), height, width), dtype=np.float32)
    masks = np.full((len(examples), height, width), IGNORE_INDEX, dtype=np.int64)
    for i, (image, mask) in enumerate(examples):
        _, h, w = image.shape
        images[i, :, :h, :w] = image
        masks[i, :h, :w] = mask
    return images, masks
