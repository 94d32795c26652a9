"""What a model costs: parameters, multiply-accumulates, activation memory, receptive field.

Three files, one question each:

    counting.py          parameters, and the MACs and activation bytes of one forward
                         pass, counted on the autograd graph the pass leaves behind
    receptive_fields.py  how many input pixels one output pixel sees and how far away
                         (the reach tiling needs), measured by perturbing the input
                         (and by formula, for a plain chain)
    comparison.py        the report of `python -m tinyseg complexity`: the naive
                         window, its to_fcn(), the FCN and the U-Net side by side,
                         and why a convolution is not a dense layer over every pixel

Every number is measured on the model object itself, so it stays true when
a model changes. The names most callers need are importable from here:

    from tinyseg.complexity import receptive_field, downsampling_period, report
"""

from tinyseg.complexity.comparison import (
    DENSE_EXAMPLE, dense_layer_comparison, dense_parameter_count, format_report, report,
)
from tinyseg.complexity.counting import (
    MAC_OPS, NO_MACS, activation_bytes, count_macs, count_parameters, forward_cost,
    multiply_accumulates, trace, window_cost,
)
from tinyseg.complexity.receptive_fields import (
    chain_receptive_field, downsampling_period, field_reach, receptive_field,
)

__all__ = ["DENSE_EXAMPLE", "MAC_OPS", "NO_MACS", "activation_bytes",
           "chain_receptive_field", "count_macs", "count_parameters", "dense_layer_comparison",
           "dense_parameter_count", "downsampling_period", "field_reach", "format_report", "forward_cost",
           "multiply_accumulates", "receptive_field", "report", "trace", "window_cost"]
