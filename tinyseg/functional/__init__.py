"""Operators with PyTorch's names and argument order: `import tinyseg.functional as F`."""

from tinyseg.functional.activation import log_softmax, relu, softmax
from tinyseg.functional.conv import conv2d, conv_transpose2d
from tinyseg.functional.dice import dice_loss
from tinyseg.functional.focal import focal_loss
from tinyseg.functional.linear import linear
from tinyseg.functional.loss import cross_entropy
from tinyseg.functional.normalization import batch_norm
from tinyseg.functional.pad_to_multiple import crop_like, pad_to_multiple
from tinyseg.functional.padding import pad
from tinyseg.functional.pooling import max_pool2d

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "cross_entropy", "dice_loss",
           "focal_loss", "relu", "softmax", "log_softmax", "pad", "pad_to_multiple", "crop_like",
           "batch_norm", "linear"]
