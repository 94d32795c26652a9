"""tinyseg: semantic segmentation from scratch on NumPy (CPU) or CuPy (GPU)."""

from tinyseg.autograd import is_grad_enabled, no_grad
from tinyseg.backend import cuda_available, get_array_module, get_default_device, set_default_device
from tinyseg.gradcheck import GradcheckError, gradcheck
from tinyseg.tensor import Tensor
from tinyseg.functional.concat import cat
from tinyseg import functional

__version__ = "0.1.0"

__all__ = ["Tensor", "cat", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckError",
           "cuda_available", "get_array_module", "get_default_device", "set_default_device",
           "functional"]
