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

A dataset is anything with a length and an index, like a PyTorch
`Dataset`: `len(ds)` examples, `ds[i] -> (image, mask)`. Two kinds here:

    SegmentationDataset   every array in memory (the built-in shapes)
    FolderDataset         paths only; each ds[i] reads its two files (load_folder)

Both answer class_pixel_counts() and channel_stats() (the per-channel
mean and standard deviation that training normalises with), so the
trainer treats them alike.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyseg.data.images import read_image, read_mask, resize_image, resize_mask
from tinyseg.data.normalize import combine_moments, image_moments

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

    mask_labels = None      # the masks are class indices already (a FolderDataset may decode them)

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

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean float64 (C,), std float64 (C,)) of every pixel of every image, per channel."""
        return combine_moments(image_moments(image) for image in self.images)

    def __repr__(self) -> str:
        return (f"SegmentationDataset({len(self)} examples, in_channels={self.in_channels}, "
                f"classes={self.class_names})")


class FolderDataset:
    """Image and mask files, read when an example is asked for (see load_folder).

    records: the ScannedPairs of the check pass (scan.py): paths, sizes,
        channel moments and label counts, so nothing needs reading twice.
    class_names: one name per class.
    in_channels: 1 or 3; grey images are repeated to 3 channels if it is 3.
    scale: each example is resized by this factor when read (image bilinear,
        mask nearest), as it was in the scan.
    mask_labels: the MaskLabels that turn each mask file into class indices
        (mask_labels.py); None reads masks as stored. Kept as `.mask_labels`,
        so a checkpoint can store it and eval and predict read masks alike.

    Only the paths are held: a folder larger than memory trains one batch
    at a time. `ds[i]` reads, scales and returns (image float32 (C, H, W),
    mask int64 (H, W)).
    """

    def __init__(self, records: list, class_names: Sequence[str], in_channels: int,
                 scale: float = 1.0, mask_labels=None):
        self.records = list(records)
        self.paths = [(record.image, record.mask) for record in self.records]
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.in_channels = int(in_channels)
        self.scale = float(scale)
        self.mask_labels = mask_labels
        unlabelled = [record.mask for record in self.records
                      if (record.labels == IGNORE_INDEX).all()]
        self.notes = [f"{len(unlabelled)} mask(s) are all {IGNORE_INDEX} (ignore), e.g. "
                      f"{unlabelled[0]}: their images add nothing to the loss or the scores"
                      ] if unlabelled else []

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 (C, H, W), mask int64 (H, W)) of pair `index`, read from its files now."""
        record = self.records[index]
        image = resize_image(read_image(record.image), record.size)      # (C, H, W) as scanned
        mask = resize_mask(read_mask(record.mask, self.mask_labels), record.size)   # (H, W)
        if image.shape[0] != self.in_channels:
            image = np.repeat(image, self.in_channels, axis=0)           # grey -> R, G, B
        return image, mask

    def class_pixel_counts(self) -> np.ndarray:
        """How many pixels of each class the masks hold: int64 (num_classes,), ignore left out."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for record in self.records:
            keep = record.labels != IGNORE_INDEX
            np.add.at(counts, record.labels[keep], record.counts[keep])
        return counts

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean float64 (C,), std float64 (C,)) of every pixel of every (scaled) image, per channel.

        From the scan's per-image moments; a grey image in a colour dataset
        counts the same in R, G and B, as it is served.
        """
        return combine_moments(widened(record.moments, self.in_channels) for record in self.records)

    def __repr__(self) -> str:
        return (f"FolderDataset({len(self)} examples, in_channels={self.in_channels}, "
                f"classes={self.class_names})")


def widened(moments: tuple, channels: int) -> tuple:
    """The moments (n, mean (C,), M2 (C,)) of an image whose channels are repeated to `channels`."""
    count, mean, m2 = moments
    repeat = channels // mean.shape[0]
    return count, np.repeat(mean, repeat), np.repeat(m2, repeat)
