"""What flip test-time augmentation (predict --tta flip) does to a checkpoint's mean IoU.

    python benchmarks/bench_tta.py --checkpoint runs/unet/best.npz                 # its validation split
    python benchmarks/bench_tta.py --checkpoint runs/unet/best.npz --data folder/  # every pair of a folder

Labels every image of the data twice through the checkpoint's Predictor,
once plainly and once as the mean of the probabilities of its 4 flips
(Predictor.probabilities(image, tta="flip")), scores both on one confusion
matrix each (metrics.py, as `eval` does), and prints the mean IoU and pixel
accuracy of each, and the time per image. The data is the one `eval` reads
(tinyseg.commands.eval.eval_dataset): the validation split the checkpoint was trained
with, or every image of --data with the checkpoint's classes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinyseg.commands.eval import eval_dataset  # noqa: E402
from tinyseg.data import IGNORE_INDEX  # noqa: E402
from tinyseg.metrics import ConfusionMatrix  # noqa: E402
from tinyseg.predictor import Predictor  # noqa: E402


def scores(predictor, dataset, tta: str) -> tuple[dict, float]:
    """(metrics of labels made with `tta`, seconds per image)."""
    matrix = ConfusionMatrix(dataset.num_classes, ignore_index=IGNORE_INDEX)
    start = time.perf_counter()
    for index in range(len(dataset)):
        image, mask = dataset[index]
        matrix.update(predictor.labels(image, tta=tta), mask)
    return matrix.compute(), (time.perf_counter() - start) / len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default=None, help="a folder (default: the checkpoint's validation split)")
    args = parser.parse_args()
    predictor, meta = Predictor.from_checkpoint(args.checkpoint)
    dataset = eval_dataset(args.data, meta)
    print(f"{len(dataset)} images of {args.data or 'the validation split'}")
    print(f"{'--tta':<8}{'mIoU':>8}{'pixel acc':>11}{'ms/image':>10}")
    for tta in ("none", "flip"):
        metrics, seconds = scores(predictor, dataset, tta)
        print(f"{tta:<8}{metrics['mean_iou']:>8.4f}{metrics['pixel_accuracy']:>11.4f}{seconds * 1e3:>10.1f}")


if __name__ == "__main__":
    main()
