"""A tiny training run, for the tests that need a checkpoint (inspect, predict --probs, eval --out)."""

from tinyseg.train import TrainConfig, fit


def tiny_checkpoint(out, model: str = "unet") -> str:
    """Train `model` one epoch on 8 built-in 24 x 24 images (4 to validate) into `out`: best.npz's path."""
    config = TrainConfig(model=model, epochs=1, batch_size=4, size=24, train_count=8, val_count=4,
                         base_channels=4, depth=2, width=4, out=str(out), seed=3)
    fit(config, show_progress=False, log=lambda *args: None)
    return str(out / "best.npz")
