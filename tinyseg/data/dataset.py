"""A segmentation dataset: pairs of (image, mask) and the names of the classes.

One example is two arrays of the same height and width:

    image  float32 (C, H, W)   C = 1 (grey) or 3 (RGB), values in [0, 1]
    mask   int64   (H, W)      the class index of every pixel, 0 .. num_classes-1,
                               or IGNORE_INDEX (255) where the label is unknown

    image (one channel)        mask
    0.1 0.1 0.9 0.9            0 0 1 1         0 = background
    0.1 0.1 0.9 0.9            0 0 1 1         1 = disc
    0.2 0.1 0.1 0.1            0 0 0 0        255 = "do not score this pixel"
    0.1 0.2 0.1 0.1            0 0 255 0

Pixels marked 255 are left out of the loss (cross_entropy's ignore_index)
and out of every metric; the data loader also uses 255 to fill the padding
it adds around small images.

The dataset itself is just two lists with a length and an index, like a
PyTorch `Dataset`: `len(ds)` examples, `ds[i] -> (image, mask)`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

IGNORE_INDEX = 255


class SegmentationDataset:
    """Images and masks held in memory, with the class names.

    images: a (N, C, H, W) array or a list of (C, H, W) arrays (sizes may differ
        from one example to the next, the channel count C may not).
    masks: a (N, H, W) array or a list of (H, W) integer arrays, each the size
        of its image.
    class_names: one name per class; `num_classes = len(class_names)`.
    in_channels: C; only needed for an empty dataset (otherwise read from images).

    Images are stored as float32 and masks as int64, the dtypes the models
    and the loss expect.
    """

    def __init__(self, images, masks, class_names: Sequence[str], in_channels: int | None = None):
        if len(images) != len(masks):
            raise ValueError(f"SegmentationDataset: {len(images)} images but {len(masks)} masks")
        self.images = [np.asarray(image, dtype=np.float32) for image in images]
        self.masks = [np.asarray(mask).astype(np.int64, copy=False) for mask in masks]
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        if in_channels is None:
            if not self.images:
                raise ValueError("SegmentationDataset: an empty dataset needs in_channels")
            in_channels = self.images[0].shape[0]
        self.in_channels = int(in_channels)
        for index in range(len(self.images)):
            self.check_example(index)

    def check_example(self, index: int) -> None:
        """Raise ValueError if example `index` has the wrong shape or labels."""
        image, mask = self.images[index], self.masks[index]
        if image.ndim != 3 or image.shape[0] != self.in_channels:
            raise ValueError(f"SegmentationDataset: image {index} must be ({self.in_channels}, H, W), "
                             f"got shape {image.shape}")
        if mask.shape != image.shape[1:]:
            raise ValueError(f"SegmentationDataset: mask {index} must be {image.shape[1:]} "
                             f"(the image's H, W), got shape {mask.shape}")
        bad = (mask != IGNORE_INDEX) & ((mask < 0) | (mask >= self.num_classes))
        if bad.any():
            raise ValueError(f"SegmentationDataset: mask {index} holds label {int(mask[bad][0])}, "
                             f"expected 0..{self.num_classes - 1} or {IGNORE_INDEX}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 (C, H, W), mask int64 (H, W)) of example `index`."""
        return self.images[index], self.masks[index]

    def class_pixel_counts(self) -> np.ndarray:
        """How many pixels of each class the masks hold: int64 (num_classes,), ignore left out."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for mask in self.masks:
            labels = mask[mask != IGNORE_INDEX]
            counts += np.bincount(labels.ravel(), minlength=self.num_classes)
        return counts

    def __repr__(self) -> str:
        return (f"SegmentationDataset({len(self)} examples, in_channels={self.in_channels}, "
                f"classes={self.class_names})")
