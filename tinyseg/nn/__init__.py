"""Layers with PyTorch's names: `from tinyseg import nn`.

    module.py         Module, Parameter, Sequential: parameters(), state_dict(), to(), train()/eval()
    init.py           He (Kaiming) initialisation from a seeded numpy Generator
    conv.py           Conv2d, ConvTranspose2d
    layers.py         ReLU, MaxPool2d, Flatten, Linear, BatchNorm2d
    loss.py           CrossEntropyLoss, DiceLoss, CrossEntropyDiceLoss, FocalLoss

Each layer holds Parameters and calls one operator of tinyseg.functional.
"""

from tinyseg.nn import init
from tinyseg.nn.conv import Conv2d, ConvTranspose2d
from tinyseg.nn.layers import BatchNorm2d, Flatten, Linear, MaxPool2d, ReLU
from tinyseg.nn.loss import CrossEntropyDiceLoss, CrossEntropyLoss, DiceLoss, FocalLoss
from tinyseg.nn.module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "ConvTranspose2d", "MaxPool2d",
           "ReLU", "BatchNorm2d", "Linear", "Flatten", "init",
           "CrossEntropyLoss", "DiceLoss", "CrossEntropyDiceLoss", "FocalLoss"]
