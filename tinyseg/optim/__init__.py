"""Optimizers with PyTorch's names and update rules: `from tinyseg import optim`.

    optimizer.py   Optimizer: parameter list, zero_grad(), flat state_dict() for .npz files
    sgd.py         SGD(params, lr, momentum=0, weight_decay=0)
    adam.py        Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    lr_scheduler.py  StepLR, CosineAnnealingLR, PolynomialLR, LinearLR, SequentialLR: optimizer.lr per step
"""

from tinyseg.optim import lr_scheduler
from tinyseg.optim.adam import Adam
from tinyseg.optim.optimizer import Optimizer
from tinyseg.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "lr_scheduler"]
