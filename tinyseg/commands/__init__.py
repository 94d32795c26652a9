"""The commands of `python -m tinyseg COMMAND`, one module each (cli.py runs them).

Every module has the same two functions, and nothing else of tinyseg knows
about the command line:

    add_arguments(parser)   the command's options (argparse)
    run(args)               do what the parsed options ask; returns the exit status

    train.py       train a model: the options are train_config.py's table, the work train.fit
    eval.py        score a checkpoint (evaluate.py), print the table and the confusion matrix
    predict.py     write masks and overlays for images (predict.py)
    tour.py        naive vs FCN vs U-Net on one budget (tour.py)
    complexity.py  parameters, MACs, memory, receptive field (complexity/)
    graph.py       draw a model's autograd graph (graph.py)
    augment.py     picture what --augment does (data/augment.py)
    export.py      a checkpoint for PyTorch or ONNX Runtime (interop/export.py)
    inspect.py     inside a trained network (inspection/)

A command's work is imported when it runs, so `tinyseg --help` and each
command start without loading what the others need.
"""
