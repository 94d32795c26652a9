"""Operators with PyTorch's names and argument order: `import tinyseg.functional as F`.

The fused operators have a textbook form beside them, built of Tensor operations
(F.cross_entropy_textbook, F.batch_norm_textbook, F.dice_loss_textbook,
F.focal_loss_textbook, F.conv2d_relu_textbook, F.batch_norm_relu_textbook); the
convolutions switch kernels with `with F.kernels("textbook"):`.
"""

from tinyseg.functional.activation import log_softmax, relu, softmax
from tinyseg.functional.conv import (
    conv2d, conv2d_relu, conv2d_relu_textbook, conv_transpose2d, kernels,
)
from tinyseg.functional.dice import dice_loss, dice_loss_textbook
from tinyseg.functional.focal import focal_loss, focal_loss_textbook
from tinyseg.functional.linear import linear
from tinyseg.functional.loss import cross_entropy, cross_entropy_textbook, mean_divisor
from tinyseg.functional.normalization import (
    batch_norm, batch_norm_relu, batch_norm_relu_textbook, batch_norm_textbook,
)
from tinyseg.functional.pad_to_multiple import crop_like, pad_to_multiple
from tinyseg.functional.padding import pad
from tinyseg.functional.pooling import max_pool2d

__all__ = ["conv2d", "conv2d_relu", "conv_transpose2d", "max_pool2d", "cross_entropy", "dice_loss",
           "mean_divisor", "focal_loss", "relu", "softmax", "log_softmax", "pad", "pad_to_multiple",
           "crop_like", "batch_norm", "batch_norm_relu", "linear", "kernels", "cross_entropy_textbook",
           "batch_norm_textbook", "dice_loss_textbook", "focal_loss_textbook", "conv2d_relu_textbook",
           "batch_norm_relu_textbook"]
