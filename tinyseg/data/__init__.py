"""Data for segmentation: datasets of (image, mask) pairs and a loader that batches them.

    SegmentationDataset   images (C, H, W) float32 + masks (H, W) int64 + class names
    make_shapes           the built-in synthetic data, drawn from a seed (no files)
    shapes_dataset        its "train" and "val" splits
    load_folder           your own PNG/JPEG images and PNG masks from a folder
    DataLoader            shuffled, optionally flipped batches (B, C, H, W), (B, H, W)

Masks hold class indices; IGNORE_INDEX (255) marks pixels that are left out
of the loss and the metrics.
"""

from tinyseg.data.dataset import IGNORE_INDEX, SegmentationDataset
from tinyseg.data.folder import load_folder
from tinyseg.data.loader import DataLoader, collate, flip_pair
from tinyseg.data.shapes import SHAPE_KINDS, make_shapes, shapes_dataset

__all__ = ["IGNORE_INDEX", "SegmentationDataset", "load_folder", "DataLoader", "collate", "flip_pair",
           "SHAPE_KINDS", "make_shapes", "shapes_dataset"]
