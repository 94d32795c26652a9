"""Scoring a model: loss and metrics over a whole dataset, through its Predictor.

    predictor = Predictor(model, normalization=meta["normalization"], device="cpu")
    metrics = evaluate(predictor, val_set)
    metrics["mean_iou"], metrics["pixel_accuracy"], metrics["loss"]

Each image is labelled as `tinyseg predict` labels it (predictor.py: the
model's inference form, in eval mode, without a graph, on inputs normalised
as the training images were, tile by tile when large), so memory is bounded
whatever the image sizes, and images of different sizes need no padding.
Every labelled pixel of every image goes into one confusion matrix
(metrics.py), so the IoU is that of the whole set, not an average of
per-image IoUs. The loss is plain cross-entropy summed over the labelled
pixels and divided by their number (`pixel_loss` is its mean form),
whatever --loss trained the model, so runs compare; NaN when no pixel is
labelled. train.py calls evaluate after every epoch; `tinyseg eval` and the
tour call it on a loaded checkpoint.
"""

from __future__ import annotations

import math

import numpy as np

import tinyseg.functional as F
from tinyseg import backend
from tinyseg.data import IGNORE_INDEX
from tinyseg.metrics import ConfusionMatrix
from tinyseg.progress import progress
from tinyseg.tensor import Tensor
from tinyseg.visualize import thumbnail


def pixel_loss(logits, target):
    """Cross-entropy over every labelled pixel (or window): the criterion the models are given."""
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


def evaluate(predictor, dataset, show_progress: bool = False, keep: int = 0) -> dict:
    """Loss and metrics of the predictor's model on every pixel of `dataset` (one confusion matrix).

    Returns metrics.ConfusionMatrix.compute()'s dict (mean_iou, pixel_accuracy,
    per-class scores, "matrix") with "loss" added, and with keep > 0,
    "examples": [(image, truth, prediction)] of the first `keep` images, made
    small for pictures (visualize.thumbnail), so that no pass runs again to draw them.
    """
    matrix = ConfusionMatrix(dataset.num_classes, ignore_index=IGNORE_INDEX)
    net = predictor.network()
    loss_sum, labelled, examples = 0.0, 0, []
    for index in progress(range(len(dataset)), len(dataset), "validation", show_progress, delay=2):
        image, mask = dataset[index]                                   # (C, H, W), (H, W)
        labels = np.empty(mask.shape, dtype=np.int64) if index < keep else None
        for rows, cols, logits in predictor.logits_by_tile(image, net):   # (K, h, w) on the device
            target = mask[rows, cols]                                  # (h, w) on the host
            count = int((target != IGNORE_INDEX).sum())
            if count:
                loss = F.cross_entropy(Tensor(logits[None]), backend.to_device(target[None], predictor.device),
                                       ignore_index=IGNORE_INDEX, reduction="sum")
                loss_sum += float(loss.item())
                labelled += count
            predicted = backend.to_numpy(logits.argmax(axis=0))        # (h, w)
            matrix.update(predicted, target)
            if labels is not None:
                labels[rows, cols] = predicted
        if labels is not None:
            examples.append(tuple(thumbnail(array) for array in (image, mask, labels)))
    metrics = matrix.compute()
    metrics["loss"] = loss_sum / labelled if labelled else math.nan
    if keep:
        metrics["examples"] = examples
    return metrics
