"""The built-in "shapes" data: synthetic images made on the fly from a seed.

Every image holds a few shapes (discs, squares, triangles, ...) drawn over a
textured, noisy background, some overlapping, each in a random colour:

    +--------------------------------+     mask of the same image
    | ~~~ ~~~ ~~~ ~~~ ~~~ ~~~ ~~~ ~~ |     0 0 0 0 0 0 0 0 0 0 0 0 0 0
    | ~~~  ####### ~~~ ~~~ ~~~ ~~~ ~ |     0 0 2 2 2 2 0 0 0 0 0 0 0 0
    | ~~~  ####### ~~~  .   ~~~ ~~~  |     0 0 2 2 2 2 0 0 3 0 0 0 0 0
    | ~~~  ####### ~~  ...  ~~~ ~~~  |     0 0 2 2 2 2 0 3 3 3 0 0 0 0
    | ~~ ~~~ ~~~ ~~~  .....  ~~~ ~~  |     0 0 0 0 0 0 3 3 3 3 3 0 0 0
    | ~~~ ~~~ ~~~ ~~~ ~~~  @@@@ ~~~  |     0 0 0 0 0 0 0 0 0 1 1 1 0 0
    | ~~~ ~~~ ~~~ ~~~ ~~~ @@@@@@ ~~~ |     0 0 0 0 0 0 0 0 0 1 1 1 1 0
    +--------------------------------+     (0 background, 1 disc, 2 square, 3 triangle)

The class of a pixel is the KIND of shape it belongs to, never its colour:
every shape gets a random colour from the same distribution whatever its
kind, and every kind covers the same area on average, so neither colour nor
size gives the answer away. A pixel in the middle of a large square looks
exactly like a pixel in the middle of a large disc; only a view of the
shape's outline (its corners, its curvature) tells them apart. That is why
the receptive field matters on this data:

* a model that sees a small window (say 5x5) can find where shapes are
  (flat colour versus striped background) but, away from the edges, must
  guess which kind;
* an FCN that sees, say, 20 pixels around can name small shapes;
* a U-Net sees the whole image and names large shapes too.

Shapes stand upright by default (squares axis-aligned, triangles pointing
up); rotate=True turns each one by a random angle, which makes the problem
harder. Shapes may overlap, the later one on top, but each is placed where
it hides the least of the earlier ones (the best of a few random tries).

Everything is drawn with whole-array NumPy operations (no loop over pixels
or images), in chunks of CHUNK images, each chunk with its own random stream
spawned from the seed. So the same seed always gives the same images, and
asking for more images keeps the first ones unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from tinyseg.data.dataset import SegmentationDataset

SHAPE_KINDS = ("disc", "square", "triangle", "cross", "ring")
SPLITS = ("train", "val")
DEFAULT_COUNTS = {"train": 1000, "val": 200}
CHUNK = 64            # images drawn together, from one random stream

# Each kind is scaled to the area of a disc of radius r ("nominal radius"),
# so size alone does not tell the kinds apart. Derivations, for area pi r^2:
SQUARE_HALF_SIDE = math.sqrt(math.pi) / 2                       # (2s)^2 = pi r^2
TRIANGLE_CIRCUMRADIUS = math.sqrt(4 * math.pi / (3 * math.sqrt(3)))   # (3 sqrt3 / 4) R^2 = pi r^2
CROSS_ARM = math.sqrt(9 * math.pi / 20)                         # arms L long, L/3 wide: 20 L^2 / 9
RING_OUTER = math.sqrt(4 / 3)                                   # annulus R .. R/2: (3/4) pi R^2
# How far each kind reaches from its centre (in units of r), to keep it inside the frame.
REACH = {"disc": 1.0, "square": SQUARE_HALF_SIDE * math.sqrt(2), "triangle": TRIANGLE_CIRCUMRADIUS,
         "cross": CROSS_ARM * math.hypot(1, 1 / 3), "ring": RING_OUTER}


def make_shapes(count: int, size: int = 64, num_classes: int = 4, seed=0,
                shapes_per_image: tuple[int, int] = (2, 4), radius: tuple[float, float] | None = None,
                rotate: bool = False, noise: float = 0.05) -> SegmentationDataset:
    """`count` synthetic RGB images of `size` x `size` with their masks.

    num_classes: 1 background class + one class per shape kind, taken in the
        order of SHAPE_KINDS (4 = background, disc, square, triangle; at most 6).
    seed: an int (or a tuple of ints); the same seed gives the same arrays.
    shapes_per_image: (fewest, most) shapes in one image, drawn uniformly.
    radius: (smallest, largest) nominal radius in pixels, the radius of a disc
        of the same area; default (0.1, 0.25) * size, i.e. 6.4 .. 16 at 64x64.
    rotate: False (default) keeps squares and crosses upright and triangles
        pointing up; True turns every shape by a random angle, a harder
        problem that takes a U-Net noticeably longer to learn.
    noise: standard deviation of the pixel noise added to the whole image.

    Returns a SegmentationDataset: images float32 (3, size, size) in [0, 1],
    masks int64 (size, size) in 0 .. num_classes-1.
    """
    if not 2 <= num_classes <= len(SHAPE_KINDS) + 1:
        raise ValueError(f"make_shapes: num_classes must be 2..{len(SHAPE_KINDS) + 1}, got {num_classes}")
    fewest, most = shapes_per_image
    if not 1 <= fewest <= most:
        raise ValueError(f"make_shapes: shapes_per_image must be (fewest, most) with 1 <= fewest <= most, "
                         f"got {shapes_per_image}")
    if radius is None:
        radius = (0.1 * size, 0.25 * size)
    kinds = SHAPE_KINDS[:num_classes - 1]
    n_chunks = -(-count // CHUNK)
    streams = np.random.SeedSequence(seed).spawn(n_chunks)
    images, masks = [], []
    for stream in streams:
        rng = np.random.default_rng(stream)
        chunk_images, chunk_masks = draw_chunk(rng, CHUNK, size, kinds, shapes_per_image, radius,
                                               rotate, noise)
        images.append(chunk_images)
        masks.append(chunk_masks)
    images = np.concatenate(images)[:count] if images else np.zeros((0, 3, size, size), np.float32)
    masks = np.concatenate(masks)[:count] if masks else np.zeros((0, size, size), np.int64)
    return SegmentationDataset(images, masks, ["background", *kinds], in_channels=3)


def shapes_dataset(split: str = "train", count: int | None = None, size: int = 64, num_classes: int = 4,
                   seed: int = 0, **options) -> SegmentationDataset:
    """The "train" or "val" split of the shapes data: make_shapes with a seed per split.

    The two splits come from different random streams, (seed, 0) and (seed, 1),
    so no validation image is a training image. count defaults to 1000 for
    train and 200 for val. Other keyword options go to make_shapes.
    """
    if split not in SPLITS:
        raise ValueError(f"shapes_dataset: split must be one of {SPLITS}, got {split!r}")
    if count is None:
        count = DEFAULT_COUNTS[split]
    return make_shapes(count, size, num_classes, seed=(seed, SPLITS.index(split)), **options)


def draw_chunk(rng, n: int, size: int, kinds, shapes_per_image, radius, rotate, noise):
    """n images (n, 3, size, size) float32 and masks (n, size, size) int64."""
    images = textured_background(rng, n, size)                          # (n, 3, S, S)
    masks = np.zeros((n, size, size), dtype=np.int64)
    shape_counts = rng.integers(shapes_per_image[0], shapes_per_image[1] + 1, size=n)   # (n,)
    for slot in range(shapes_per_image[1]):                             # later shapes lie on top
        kind = rng.integers(0, len(kinds), size=n)                     # (n,) index into kinds
        inside = least_hidden_outline(rng, kind, kinds, size, radius, rotate, masks > 0)   # (n, S, S)
        inside &= (slot < shape_counts)[:, None, None]                 # images with fewer shapes
        colour = contrasting_colour(rng, images, inside)               # (n, 3)
        np.copyto(images, colour[:, :, None, None], where=inside[:, None])   # paint it, in place
        masks = np.where(inside, kind[:, None, None] + 1, masks)              # class = kind + 1
    images = images + noise * rng.standard_normal(images.shape, dtype=np.float32)
    return np.clip(images, 0.0, 1.0).astype(np.float32), masks


def textured_background(rng, n: int, size: int, grid: int = 4) -> np.ndarray:
    """Smooth colour blotches plus fine stripes: (n, 3, size, size) float32.

    The blotches are a coarse (grid x grid) field of random colours, enlarged
    with bilinear interpolation; the stripes are one sine wave per image in a
    random direction, 4 to 7 pixels apart, a texture the flat shapes lack: a
    small window can tell shape from background, though not which shape.
    """
    coarse = rng.random((n, 3, grid, grid), dtype=np.float32)
    stretch = bilinear_matrix(grid, size)                               # (S, grid)
    blotches = stretch @ coarse @ stretch.T                             # (n, 3, S, S)
    angle = rng.uniform(0, np.pi, size=(n, 1, 1)).astype(np.float32)
    period = rng.uniform(4, 7, size=(n, 1, 1)).astype(np.float32)      # pixels from stripe to stripe
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    along = x * np.cos(angle, dtype=np.float32) + y * np.sin(angle, dtype=np.float32)   # (n, S, S)
    stripes = 0.12 * np.sin(2 * np.pi * along / period + phase, dtype=np.float32)
    return 0.8 * blotches + 0.1 + stripes[:, None]


def bilinear_matrix(small: int, large: int) -> np.ndarray:
    """(large, small) weights W such that W @ v stretches v linearly to `large` samples."""
    position = np.linspace(0, small - 1, large)                         # where each output sample falls
    left = np.minimum(position.astype(int), small - 2)
    right_weight = position - left
    weights = np.zeros((large, small), dtype=np.float32)
    weights[np.arange(large), left] = 1 - right_weight
    weights[np.arange(large), left + 1] = right_weight
    return weights


def least_hidden_outline(rng, kind, kinds, size: int, radius, rotate, covered, tries: int = 3) -> np.ndarray:
    """Of `tries` random placements of each new shape, the one that hides least: (n, S, S) bool.

    covered: (n, S, S) bool, True where earlier shapes lie. Shapes may still
    overlap, but rarely bury one another, so most shapes keep enough of their
    outline to be recognised.
    """
    outlines = np.stack([draw_outline(rng, kind, kinds, size, radius, rotate)
                         for _ in range(tries)])                                # (T, n, S, S)
    hidden = (outlines & covered).sum(axis=(2, 3))                              # (T, n) pixels hidden
    best = hidden.argmin(axis=0)                                                # (n,)
    return outlines[best, np.arange(len(kind))]


def draw_outline(rng, kind, kinds, size: int, radius, rotate: bool) -> np.ndarray:
    """Where each image's new shape lies: (n, size, size) bool.

    Each shape gets a nominal radius r, a rotation and a centre far enough
    from the border that the whole shape is in the frame. Pixel coordinates
    are moved into the shape's own frame (u, v): centred on the shape and
    rotated with it, where each kind is a simple inequality.
    """
    n = len(kind)
    r = rng.uniform(radius[0], radius[1], size=n).astype(np.float32)  # (n,)
    turn = rng.uniform(0, 2 * np.pi, size=n).astype(np.float32) * rotate
    reach = np.minimum(r * np.array([REACH[k] for k in kinds], np.float32)[kind], size / 2)
    room = size - 2 * reach                                            # where the centre may go
    centre = reach[:, None] + rng.random((n, 2), dtype=np.float32) * room[:, None]   # (n, 2): x, y
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5          # pixel centres
    dx = x - centre[:, 0, None, None]                                  # (n, S, S)
    dy = y - centre[:, 1, None, None]
    cos, sin = np.cos(turn)[:, None, None], np.sin(turn)[:, None, None]
    u, v = dx * cos + dy * sin, dy * cos - dx * sin                    # rotated into the shape's frame
    inside = np.zeros((n, size, size), dtype=bool)
    for index, name in enumerate(kinds):
        chosen = kind == index
        inside[chosen] = inside_shape(name, u[chosen], v[chosen], r[chosen, None, None])
    return inside


def inside_shape(name: str, u, v, r) -> np.ndarray:
    """True where (u, v) lies inside shape `name` of nominal radius r, centred at 0."""
    if name == "disc":
        return u * u + v * v <= r * r
    if name == "square":
        return np.maximum(abs(u), abs(v)) <= SQUARE_HALF_SIDE * r
    if name == "triangle":                  # inside all 3 edges; each edge is R/2 from the centre
        big_r = TRIANGLE_CIRCUMRADIUS * r
        edges = [u * np.cos(a) + v * np.sin(a) <= big_r / 2 for a in (np.pi / 2 + k * 2 * np.pi / 3
                                                                      for k in range(3))]
        return edges[0] & edges[1] & edges[2]
    if name == "cross":                     # a horizontal bar and a vertical bar
        arm = CROSS_ARM * r
        return ((abs(u) <= arm) & (abs(v) <= arm / 3)) | ((abs(u) <= arm / 3) & (abs(v) <= arm))
    if name == "ring":
        distance2 = u * u + v * v
        outer = RING_OUTER * r
        return (distance2 <= outer * outer) & (distance2 >= outer * outer / 4)
    raise ValueError(f"inside_shape: unknown shape {name!r}, expected one of {SHAPE_KINDS}")


def contrasting_colour(rng, images, inside, candidates: int = 4, min_distance: float = 0.4) -> np.ndarray:
    """A random colour per image that stands out from what the new shape covers: (n, 3).

    Draws `candidates` uniform colours and keeps the first one at least
    `min_distance` away from the mean colour under the shape (the farthest if
    none is), so a shape never vanishes into its background. The choice never
    looks at the shape's kind, so every class gets the same colours.
    """
    area = np.maximum(inside.sum(axis=(1, 2)), 1)[:, None]                     # (n, 1)
    beneath = (images * inside[:, None]).sum(axis=(2, 3)) / area               # (n, 3)
    options = rng.random((len(images), candidates, 3), dtype=np.float32)       # (n, K, 3)
    distance = np.linalg.norm(options - beneath[:, None], axis=2)              # (n, K)
    far_enough = distance >= min_distance
    pick = np.where(far_enough.any(axis=1), far_enough.argmax(axis=1), distance.argmax(axis=1))
    return options[np.arange(len(images)), pick]
