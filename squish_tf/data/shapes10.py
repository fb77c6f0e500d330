"""shapes10: a procedurally generated 10-class image dataset, offline and deterministic.

Each image shows one large filled shape (the label) in a scene:

  classes    circle, square, triangle, pentagon, hexagon, star, cross, ring,
             crescent, arrow. Every shape has a mirror axis, so under random
             rotation a horizontally flipped image is another draw of the same
             class: `RandomFlip("horizontal")` is label-safe.
  nuisances  rotation and class-specific proportions (star depth, ring hole,
             cross arm width, ...) always; and, scaled by a per-scene
             difficulty d in [0, 1): shape size and position, shape hue and
             its contrast to the background, shading across the shape, a
             background of two colours blended along a random direction with a
             sinusoidal texture, thin strokes and small blobs (some strokes
             drawn over the shape, occluding it) and pixel noise.

At d = 0 a large, near-white shape sits in the middle of a near-black image; as
d grows the shape shrinks, wanders, takes a random hue at lower contrast, and
clutter and noise close in, until small pentagons, hexagons and circles differ
in a few noisy edge pixels. The easy scenes let a network find the shapes
quickly; the hard ones decide how good it gets, which is what lets shrinking a
network cost measurable accuracy. Shapes are always lighter than their
background (see `_lit_colour` for why).

A scene is described in resolution-free coordinates (the image is the unit
square) and drawn with anti-aliased edges from signed distances, so the same
seed gives the same scenes at any `image_size`.

Pure numpy (no TensorFlow), vectorised over chunks of images and rendered on
all cores.
"""

import concurrent.futures
import functools
import math
import os
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

from squish_tf.data.config import TEST, TRAIN, VALIDATION, DataConfig, Source, Split

_SHAPES10_SIZES = {TRAIN: "shapes10_train_size", VALIDATION: "shapes10_validation_size",
                   TEST: "shapes10_test_size"}


def shapes10_source(config: DataConfig, splits: Sequence[str]) -> Source:
  for field in _SHAPES10_SIZES.values():
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{field} must be a positive integer, got {value!r}.")
  built = {}
  for split in splits:
    images, labels = _shapes10_arrays(getattr(config, _SHAPES10_SIZES[split]), config.image_size,
                                      config.seed, split)
    built[split] = _indexed_arrays(images, labels)
  return Source(splits=built, class_names=CLASS_NAMES,
                 counts={split: getattr(config, field) for split, field in _SHAPES10_SIZES.items()})


def _indexed_arrays(images: np.ndarray, labels: np.ndarray) -> Split:
  """Arrays in memory as a split of indices: the shuffle moves indices, not images."""
  images, labels = tf.constant(images), tf.constant(labels.astype(np.int32))
  return Split(items=tf.data.Dataset.range(len(labels)), count=len(labels),
                decode=lambda index: (tf.gather(images, index), tf.gather(labels, index)))


@functools.lru_cache(maxsize=6)
def _shapes10_arrays(count: int, image_size: int, seed: int,
                     split: str) -> Tuple[np.ndarray, np.ndarray]:
  """shapes10.generate, remembered: evolution reloads the same data for every candidate."""
  images, labels = generate(count, image_size, seed, split)
  images.setflags(write=False)  # shared between callers
  labels.setflags(write=False)
  return images, labels


CLASS_NAMES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ring",
               "crescent", "arrow")
NUM_CLASSES = len(CLASS_NAMES)


# A split is a separate random stream, so train and validation are different draws
# from the same distribution for the same seed.
SPLITS = ("train", "validation", "test")


# Pixels rendered per vectorised step: small enough that the float32 work arrays
# stay in cache, large enough to amortise numpy's per-call overhead. Part of the
# noise stream's definition; changing it changes the images.
_CHUNK_PIXELS = 1 << 16


# Scene parameters (unit square = whole image; colours in 0..255). Every scene
# draws a difficulty d in [0, 1) (uniform, raised to _DIFFICULTY_POWER) that
# scales all nuisances together, from "easy" (d = 0) to "hard" (d -> 1).
_DIFFICULTY_POWER = 1.0
_SIZE_EASY = (0.28, 0.34)        # bounding radius of the labelled shape at d = 0 ...
_SIZE_HARD = (0.15, 0.30)        # ... and at d = 1
_BACKGROUND_MAX = 150.0          # background colour channels are drawn in [0, d * this]
_CONTRAST_EASY = 150.0           # shape luma minus background-mean luma, at least, at d = 0 ...
_CONTRAST_HARD = 60.0            # ... and at d = 1
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601
_NUM_STROKES = 4                 # stroke slots per image; each is used with d * _STROKE_PROB
_STROKE_PROB = 0.7
_STROKE_WIDTH = (0.012, 0.035)
_STROKE_OVER_PROB = 0.35         # strokes drawn over the shape occlude it
_NUM_BLOBS = 3                   # small blobs, well below the smallest labelled shape
_BLOB_PROB = 0.6
_BLOB_RADIUS = (0.02, 0.05)
_TEXTURE_AMPLITUDE = 30.0        # at d = 1
_NOISE_SIGMA = 20.0              # largest noise std at d = 1
_SHADING = 35.0                  # peak brightness change across the shape at d = 1


def generate(num_images: int, image_size: int, seed: int = 0,
             split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
  """Draws `num_images` shapes10 images at `image_size` x `image_size`.

  The labels are balanced (counts differ by at most one) and shuffled. The
  result depends only on (num_images, image_size, seed, split): the same
  arguments give bitwise identical arrays, another seed or split gives other
  images, and another image_size renders the same scenes at that resolution.

  Args:
    num_images: how many images to draw (>= 0).
    image_size: height and width in pixels (>= 1).
    seed: random seed (a non-negative integer).
    split: "train", "validation" or "test"; each is an independent stream.

  Returns:
    (images uint8 [num_images, image_size, image_size, 3],
     labels int32 [num_images] indexing CLASS_NAMES).
  """
  num_images, image_size, seed = _check_args(num_images, image_size, seed, split)
  split_id = SPLITS.index(split)
  params = _draw_scenes(np.random.default_rng([seed, split_id, 0]), num_images)
  images = np.empty((num_images, image_size, image_size, 3), np.uint8)
  chunk_size = max(1, _CHUNK_PIXELS // (image_size * image_size))

  def render_chunk(number: int) -> None:
    start, stop = number * chunk_size, min((number + 1) * chunk_size, num_images)
    chunk = {key: value[start:stop] for key, value in params.items()}
    # Pixel noise has its own generator per chunk, so the scene parameters do
    # not depend on image_size and chunks can be drawn in any order.
    noise_rng = np.random.default_rng([seed, split_id, 1, number, image_size])
    images[start:stop] = _render(chunk, image_size, noise_rng)

  # numpy releases the GIL inside its kernels, so threads render chunks in parallel.
  with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    list(pool.map(render_chunk, range(math.ceil(num_images / chunk_size))))
  return images, params["label"].astype(np.int32)


def _check_args(num_images, image_size, seed, split):
  for name, value, minimum in (("num_images", num_images, 0), ("image_size", image_size, 1),
                               ("seed", seed, 0)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
      raise ValueError(f"shapes10 {name} must be an integer >= {minimum}, got {value!r}.")
  if split not in SPLITS:
    raise ValueError(f"shapes10 split must be one of {SPLITS}, got {split!r}.")
  return int(num_images), int(image_size), int(seed)


def _draw_scenes(rng: np.random.Generator, n: int) -> Dict[str, np.ndarray]:
  """Every random choice of every scene, drawn up front in a fixed order."""
  u = lambda low, high, *shape: rng.uniform(low, high, (n, *shape)).astype(np.float32)
  p: Dict[str, np.ndarray] = {}
  p["label"] = rng.permutation(np.arange(n) % NUM_CLASSES)
  d = u(0, 1) ** _DIFFICULTY_POWER
  p["difficulty"] = d
  lerp = lambda easy, hard: easy + (hard - easy) * d
  # Background: two colours along a random direction, plus a texture of two
  # sinusoidal gratings with per-channel amplitudes.
  p["bg_a"] = u(0, 1, 3) * (_BACKGROUND_MAX * d)[:, None]
  p["bg_b"] = u(0, 1, 3) * (_BACKGROUND_MAX * d)[:, None]
  p["bg_dir"] = u(0, 2 * math.pi)
  p["tex_freq"] = u(1.0, 7.0, 2) * 2 * math.pi
  p["tex_dir"] = u(0, 2 * math.pi, 2)
  p["tex_phase"] = u(0, 2 * math.pi, 2)
  p["tex_amp"] = u(-1, 1, 2, 3) * (_TEXTURE_AMPLITUDE * d)[:, None, None]
  # The labelled shape: large and central when easy, anywhere and small when hard.
  low, high = lerp(_SIZE_EASY[0], _SIZE_HARD[0]), lerp(_SIZE_EASY[1], _SIZE_HARD[1])
  p["size"] = low + u(0, 1) * (high - low)
  p["cx"] = 0.5 + u(-1, 1) * (0.5 - p["size"]) * d
  p["cy"] = 0.5 + u(-1, 1) * (0.5 - p["size"]) * d
  p["angle"] = u(0, 2 * math.pi)
  p["shape_param"] = u(0, 1)  # class-specific proportion, see _SHAPES
  hue = u(0, 255, 3)
  colour = 255.0 + (hue - 255.0) * d[:, None]  # white when easy
  p["fg"] = _lit_colour(colour, (p["bg_a"] + p["bg_b"]) / 2,
                        lerp(_CONTRAST_EASY, _CONTRAST_HARD))
  p["shade_dir"] = u(0, 2 * math.pi)
  p["shade_amp"] = u(-1, 1) * _SHADING * d
  # Clutter.
  p["stroke_on"] = rng.random((n, _NUM_STROKES)) < (_STROKE_PROB * d)[:, None]
  p["stroke_over"] = rng.random((n, _NUM_STROKES)) < _STROKE_OVER_PROB
  p["stroke_ends"] = u(-0.1, 1.1, _NUM_STROKES, 4)
  p["stroke_width"] = u(*_STROKE_WIDTH, _NUM_STROKES)
  p["under_colour"] = u(0, 255, 3)
  p["over_colour"] = u(0, 255, 3)
  p["blob_on"] = rng.random((n, _NUM_BLOBS)) < (_BLOB_PROB * d)[:, None]
  p["blob_centre"] = u(0, 1, _NUM_BLOBS, 2)
  p["blob_radius"] = u(*_BLOB_RADIUS, _NUM_BLOBS)
  p["blob_aspect"] = u(0.4, 1.0, _NUM_BLOBS)
  p["blob_colour"] = u(0, 255, 3)
  p["noise_sigma"] = u(0, 1) * _NOISE_SIGMA * d
  return p


def _lit_colour(colour: np.ndarray, background: np.ndarray,
                contrast: np.ndarray) -> np.ndarray:
  """Brightens a shape colour until its luma exceeds the background's by `contrast`.

  Blending toward white raises luma exactly and keeps the hue. The polarity is
  fixed on purpose: with shapes randomly darker or lighter than the background,
  an edge filter's response flips sign from image to image, early gradients
  cancel, and a SqueezeNet without batch normalisation collapses to constant
  logits under the default Adam recipe before it finds the shapes.
  """
  colour_luma = colour @ _LUMA
  target = np.minimum(np.maximum(colour_luma, background @ _LUMA + contrast), 255.0)
  blend = np.clip((target - colour_luma) / np.maximum(255.0 - colour_luma, 1e-3), 0.0, 1.0)
  return (colour + blend[:, None] * (255.0 - colour)).astype(np.float32)


def _polar(u, v):
  return np.sqrt(u * u + v * v), np.arctan2(v, u)


def _regular_polygon(sides: int, radius: float) -> Callable:
  sector = 2 * math.pi / sides

  def distance(u, v, t):
    del t
    r, phi = _polar(u, v)
    # Fold the angle into one edge's sector; the edge's normal is at its middle.
    folded = phi - np.floor(phi * (1 / sector)) * sector - sector / 2
    return r * np.cos(folded) - radius * math.cos(sector / 2)

  return distance


def _circle(u, v, t):
  del t
  return np.sqrt(u * u + v * v) - 0.85


def _square(u, v, t):
  del t
  return np.maximum(np.abs(u), np.abs(v)) - 0.68


def _star(u, v, t):
  points, outer = 5, 1.0
  inner = outer * (0.38 + 0.14 * t)  # depth of the notches
  half = math.pi / points
  r, phi = _polar(u, v)
  folded = np.abs(phi - np.floor(phi * (0.5 / half)) * (2 * half) - half)  # 0 at a notch
  folded = half - folded                          # 0 at a tip
  # Edge from the tip (outer, 0) to the notch (inner at angle half).
  tip_x, tip_y = outer, 0.0
  notch_x, notch_y = inner * np.cos(half), inner * np.sin(half)
  edge_x, edge_y = notch_x - tip_x, notch_y - tip_y
  length = np.sqrt(edge_x * edge_x + edge_y * edge_y)
  normal_x, normal_y = edge_y / length, -edge_x / length  # points away from the centre
  px, py = r * np.cos(folded), r * np.sin(folded)
  return (px - tip_x) * normal_x + (py - tip_y) * normal_y


def _cross(u, v, t):
  arm, width = 0.9, 0.24 + 0.1 * t
  au, av = np.abs(u), np.abs(v)
  return np.minimum(np.maximum(au - arm, av - width), np.maximum(au - width, av - arm))


def _ring(u, v, t):
  outer = 0.88
  inner = outer * (0.45 + 0.2 * t)
  middle, half_width = (outer + inner) / 2, (outer - inner) / 2
  return np.abs(np.sqrt(u * u + v * v) - middle) - half_width


def _crescent(u, v, t):
  outer = 0.88
  bite_radius = outer * 0.85
  offset = outer * (0.38 + 0.22 * t)
  r = np.sqrt(u * u + v * v)
  bite = np.sqrt((u - offset) ** 2 + v * v)
  return np.maximum(r - outer, bite_radius - bite)


def _arrow(u, v, t):
  shaft_half_width = 0.16 + 0.08 * t
  tip, base, head_half_width = 0.95, 0.1, 0.55
  av = np.abs(v)
  slope_x, slope_y = head_half_width, tip - base  # normal of the head's slanted edges
  norm = math.hypot(slope_x, slope_y)
  head = np.maximum((u - tip) * slope_x / norm + av * slope_y / norm, base - u)
  shaft = np.maximum(np.maximum(av - shaft_half_width, -0.95 - u), u - base - 0.05)
  return np.minimum(head, shaft)


_SHAPES = (
    _circle,
    _square,
    _regular_polygon(3, 1.0),
    _regular_polygon(5, 0.92),
    _regular_polygon(6, 0.9),
    _star,
    _cross,
    _ring,
    _crescent,
    _arrow,
)


def _coverage(distance_px: np.ndarray) -> np.ndarray:
  """Anti-aliased coverage of a pixel from its signed distance in pixels."""
  return np.clip(0.5 - distance_px, 0.0, 1.0)


def _render(p: Dict[str, np.ndarray], size: int, noise_rng: np.random.Generator) -> np.ndarray:
  """Draws the scenes `p` (one chunk) as uint8 [n, size, size, 3]."""
  n = len(p["label"])
  # Pixel centres in scene units; x varies along columns, y along rows. Most
  # per-pixel quantities are (row term + column term), computed on [n, 1, S]
  # and [n, S, 1] and summed once instead of on full [n, S, S] arrays.
  grid = (np.arange(size, dtype=np.float32) + 0.5) / size
  x = grid[None, None, :]
  y = grid[None, :, None]
  col = lambda a: np.asarray(a, np.float32)[:, None, None]        # [n] -> [n, 1, 1]
  rgb = lambda a: np.asarray(a, np.float32)[:, :, None, None]     # [n, 3] -> [n, 3, 1, 1]

  # Background: two colours blended along a direction, plus two gratings.
  along = (x - 0.5) * col(np.cos(p["bg_dir"])) + ((y - 0.5) * col(np.sin(p["bg_dir"])) + 0.5)
  blend = np.clip(along, 0.0, 1.0)[:, None]                       # [n, 1, S, S]
  image = rgb(p["bg_b"] - p["bg_a"]) * blend
  image += rgb(p["bg_a"])                                          # [n, 3, S, S]
  for k in range(2):
    frequency, direction = col(p["tex_freq"][:, k]), p["tex_dir"][:, k]
    phase = (x * (col(np.cos(direction)) * frequency) + col(p["tex_phase"][:, k])
             + y * (col(np.sin(direction)) * frequency))
    wave = np.sin(phase, out=phase)[:, None]
    image += wave * rgb(p["tex_amp"][:, k])

  # Clutter under the shape: blobs (one colour per image), then strokes.
  blobs = np.zeros((n, size, size), np.float32)
  for k in range(_NUM_BLOBS):
    centre = p["blob_centre"][:, k]
    du = x - col(centre[:, 0])
    dv = (y - col(centre[:, 1])) / col(p["blob_aspect"][:, k])
    distance = np.sqrt(du * du + dv * dv)
    # An unused blob gets a negative radius, hence no coverage.
    radius = col(np.where(p["blob_on"][:, k], p["blob_radius"][:, k], -1.0))
    np.maximum(blobs, _coverage((distance - radius) * size), out=blobs)
  _paint(image, blobs, rgb(p["blob_colour"]))
  _paint(image, _strokes(p, x, y, size, over=False), rgb(p["under_colour"]))

  # The labelled shape, shaded along a random direction.
  scale = col(p["size"])
  cos_a, sin_a = col(np.cos(p["angle"])) / scale, col(np.sin(p["angle"])) / scale
  dx, dy = x - col(p["cx"]), y - col(p["cy"])
  local_u = dx * cos_a + dy * sin_a
  local_v = dy * cos_a - dx * sin_a
  distance = np.empty((n, size, size), np.float32)
  for label, shape in enumerate(_SHAPES):
    rows = np.flatnonzero(p["label"] == label)
    if rows.size:
      distance[rows] = shape(local_u[rows], local_v[rows], col(p["shape_param"][rows]))
  alpha = _coverage(distance * (scale * size))
  shade = local_u * col(np.cos(p["shade_dir"])) + local_v * col(np.sin(p["shade_dir"]))
  np.clip(shade, -1.0, 1.0, out=shade)
  shade *= col(p["shade_amp"])
  foreground = rgb(p["fg"]) + shade[:, None]
  foreground -= image
  foreground *= alpha[:, None]
  image += foreground

  _paint(image, _strokes(p, x, y, size, over=True), rgb(p["over_colour"]))

  # Uniform noise from raw bytes: an order of magnitude cheaper than Gaussian
  # draws, and for a nuisance only its strength matters (std 73.9 before scaling).
  noise = np.frombuffer(noise_rng.bytes(image.size), np.int8).reshape(image.shape)
  image += noise * col(p["noise_sigma"] / 73.9)[:, None]
  np.clip(image, 0, 255, out=image)
  np.rint(image, out=image)
  return image.astype(np.uint8).transpose(0, 2, 3, 1)


def _strokes(p, x, y, size, over: bool) -> np.ndarray:
  """Coverage [n, S, S] of the strokes drawn over (or under) the shape."""
  n = len(p["label"])
  col = lambda a: np.asarray(a, np.float32)[:, None, None]
  coverage = np.zeros((n, y.shape[1], x.shape[2]), np.float32)
  for k in range(_NUM_STROKES):
    used = p["stroke_on"][:, k] & (p["stroke_over"][:, k] == over)
    if not used.any():
      continue
    x0, y0, x1, y1 = (col(p["stroke_ends"][:, k, i]) for i in range(4))
    ex, ey = x1 - x0, y1 - y0
    inverse_length2 = 1.0 / (ex * ex + ey * ey + 1e-6)
    rx, ry = x - x0, y - y0
    # Distance to the segment: project onto it, clamp to its ends.
    along = np.clip(rx * (ex * inverse_length2) + ry * (ey * inverse_length2), 0.0, 1.0)
    px = rx - along * ex
    py = ry - along * ey
    px *= px
    py *= py
    px += py
    distance = np.sqrt(px, out=px)
    # An unused stroke gets a negative width, hence no coverage.
    half_width = col(np.where(used, p["stroke_width"][:, k] / 2, -1.0))
    np.maximum(coverage, _coverage((distance - half_width) * size), out=coverage)
  return coverage


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
  """Blends colour [n, 3, 1, 1] into image [n, 3, S, S] with coverage alpha [n, S, S]."""
  delta = colour - image
  delta *= alpha[:, None]
  image += delta
