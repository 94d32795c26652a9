"""Scoring a model: labels for images, and loss and metrics over a whole dataset.

    labels = predict_labels(model, images, "cpu", normalization=meta["normalization"])
    metrics = evaluate(model, val_set, "cpu", normalization=meta["normalization"])
    metrics["mean_iou"], metrics["pixel_accuracy"], metrics["loss"]

Both run the model in eval mode, without building a graph (no_grad), batch
by batch, on inputs normalised exactly as the training images were
(`normalized`, with the mean and std a checkpoint stores). `evaluate`
scores `model.inference_model()` (the naive model's to_fcn() rewrite: the
same labels, far faster) and adds every pixel of every batch into one
confusion matrix (metrics.py), so the IoU is that of the whole set, not an
average of per-batch IoUs. Its loss is plain cross-entropy over the labelled
pixels (`pixel_loss`), whatever --loss trained the model, so runs compare.
train.py calls both after every epoch; `tinyseg eval` and the tour call them
on a loaded checkpoint.
"""

from __future__ import annotations

import numpy as np

import tinyseg.functional as F
from tinyseg import backend
from tinyseg.autograd import no_grad
from tinyseg.data import DataLoader, IGNORE_INDEX, normalize
from tinyseg.metrics import ConfusionMatrix
from tinyseg.tensor import Tensor


def pixel_loss(logits, target):
    """Cross-entropy over every labelled pixel (or window): the criterion the models are given."""
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


def normalized(images: np.ndarray, normalization: dict | None) -> np.ndarray:
    """images scaled by the training set's per-channel {"mean": [...], "std": [...]}, if any."""
    if normalization is None:
        return images
    return normalize(images, np.asarray(normalization["mean"], dtype=np.float32),
                     np.asarray(normalization["std"], dtype=np.float32))


def predict_labels(model, images: np.ndarray, device: str, batch_size: int = 16,
                   normalization: dict | None = None) -> np.ndarray:
    """(N, H, W) int64 labels for (N, C, H, W) images, batch by batch, on the host."""
    model.eval()
    labels = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            batch = normalized(images[start:start + batch_size], normalization)
            labels.append(backend.to_numpy(model.predict(Tensor(batch, device=device)).data))
    return np.concatenate(labels).astype(np.int64)


def evaluate(model, dataset, device: str, batch_size: int = 16, normalization: dict | None = None) -> dict:
    """Loss and metrics of `model` on every pixel of `dataset` (one confusion matrix)."""
    model.eval()
    matrix = ConfusionMatrix(dataset.num_classes, ignore_index=IGNORE_INDEX)
    scorer = model.inference_model()             # the naive model's to_fcn(): same labels, far faster
    loss_sum, loss_weight = 0.0, 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with no_grad():
        for images, masks in loader:
            logits = scorer(Tensor(normalized(images, normalization), device=device))
            valid = int((masks != IGNORE_INDEX).sum())
            if valid:
                loss = pixel_loss(logits, backend.to_device(masks, device))
                loss_sum += float(loss.item()) * valid
                loss_weight += valid
            matrix.update(backend.to_numpy(logits.data.argmax(axis=1)), masks)
    metrics = matrix.compute()
    metrics["loss"] = loss_sum / max(1, loss_weight)
    return metrics
