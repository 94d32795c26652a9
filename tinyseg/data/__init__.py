"""Data for segmentation: datasets of (image, mask) pairs and a loader that batches them.

    SegmentationDataset   images (C, H, W) float32 + masks (H, W) int64 + class names, in memory
    FolderDataset         the same from files, read when asked for (load_folder returns these)
    make_shapes           the built-in synthetic data, drawn from a seed (no files)
    shapes_dataset        its "train" and "val" splits
    load_folder           your own PNG/JPEG/TIFF images and PNG masks from a folder (or Pascal
                          VOC as it ships), checked
    MaskLabels            how mask files become class indices: colour tables, id maps, reduce zero
    DataError             every problem found in a folder, in one error
    OutOfTime             the time budget ran out while checking a folder
    read_image            one image file as float32 (C, H, W), exactly, as a viewer shows it
    normalize             (x - mean) / std per channel, with the training images' statistics
    DataLoader            shuffled, optionally cropped and augmented batches (B, C, H, W), (B, H, W)
    flip_pair, crop_pair  an image and its mask flipped, or cut to a window, alike (augment.py)

Masks hold class indices; IGNORE_INDEX (255) marks pixels that are left out
of the loss and the metrics.
"""

from tinyseg.data.dataset import IGNORE_INDEX, FolderDataset, SegmentationDataset
from tinyseg.data.folder import load_folder
from tinyseg.data.images import read_image, read_mask
from tinyseg.data.augment import crop_pair, flip_pair
from tinyseg.data.loader import DataLoader, collate
from tinyseg.data.mask_labels import MaskLabels
from tinyseg.data.normalize import normalize
from tinyseg.data.problems import DataError, OutOfTime
from tinyseg.data.shapes import SHAPE_KINDS, make_shapes, shapes_dataset

__all__ = ["IGNORE_INDEX", "SegmentationDataset", "FolderDataset", "load_folder", "MaskLabels",
           "DataError", "OutOfTime", "read_image", "read_mask", "normalize", "DataLoader", "collate",
           "crop_pair", "flip_pair",
           "SHAPE_KINDS", "make_shapes", "shapes_dataset"]
