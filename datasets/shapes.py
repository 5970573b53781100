"""Procedurally drawn, labelled 64x64 images of simple shapes.

Importing this module registers the `shapes` dataset with tensorflow-datasets:

    import zoo.datasets.shapes  # noqa: F401
    ds = tfds.load("shapes", split="train")

Nothing is downloaded: every image is drawn with PIL from a random generator
seeded by (split seed, example index), so a split always holds the same
images and labels, byte for byte, whatever the order or process that draws them.
"""
import colorsys

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageDraw

CLASS_NAMES = ("circle", "square", "triangle", "star", "hexagon", "cross")
IMAGE_SIZE = 64
NUM_TRAIN_EXAMPLES = 30000
NUM_TEST_EXAMPLES = 3000
TRAIN_SEED = 0
TEST_SEED = 1

_SUPERSAMPLE = 4  # Draw at 4x resolution, then downsample for smooth edges.
_MIN_EXTENT, _MAX_EXTENT = 0.55, 0.9  # Shape diameter as a fraction of the image.
_MAX_OFFSET = 0.08  # Largest shift of the shape's centre from the image's, per axis, as a fraction of the side.
_SHAPE_SATURATION, _SHAPE_VALUE = (0.6, 1.0), (0.85, 1.0)  # HSV ranges of the shape's colour (any hue)
# Rotations that stand each outline upright (image y points down): triangle and star point
# up, the square and the cross are axis-aligned, the hexagon has a flat top.
_UPRIGHT = {"square": np.pi / 4, "triangle": -np.pi / 2, "star": -np.pi / 2}
_BACKGROUND_VALUE = (0.0, 0.2)  # HSV value range of the background (any hue and saturation): dark


def _unit_outline(name):
    """Polygon vertices of the named shape: circumradius 1, centred on the origin."""
    if name == "star":
        radii = np.tile([1.0, 0.42], 5)  # Alternate outer points and inner corners.
    elif name == "cross":
        w = 0.3  # Half the width of each arm.
        return np.array([(w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1),
                         (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1)])
    else:
        radii = np.ones({"square": 4, "triangle": 3, "hexagon": 6}[name])
    angles = np.arange(len(radii)) * 2 * np.pi / len(radii)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _hsv_to_rgb(hue, saturation, value):
    """One HSV colour, each component in [0, 1], as an RGB tuple of ints in [0, 255]."""
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def _colours(rng):
    """A (shape, background) pair: a bright, saturated colour of any hue on a dark background.

    One law for every image (since version 2.0.0): a GAN learns it in minutes, and the shape stands
    out by its brightness whatever its hue. Version 1 drew both colours over all of RGB.
    """
    shape = _hsv_to_rgb(rng.uniform(), rng.uniform(*_SHAPE_SATURATION), rng.uniform(*_SHAPE_VALUE))
    background = _hsv_to_rgb(rng.uniform(), rng.uniform(), rng.uniform(*_BACKGROUND_VALUE))
    return shape, background


def draw_shape(rng, label, size=IMAGE_SIZE):
    """Draws one shape of class `label` as a uint8 array of shape (size, size, 3).

    Centre, size and colours come from the numpy Generator `rng`, so the same
    generator state always gives the same image. Every shape stands upright.
    """
    big = size * _SUPERSAMPLE
    radius = rng.uniform(_MIN_EXTENT, _MAX_EXTENT) * big / 2
    room = min(_MAX_OFFSET * big, big / 2 - radius)  # Shifted only as far as the shape stays whole.
    centre = big / 2 + rng.uniform(-room, room, size=2)
    angle = _UPRIGHT.get(CLASS_NAMES[label], 0.0)
    colour, background = _colours(rng)

    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    name = CLASS_NAMES[label]
    if name == "circle":
        draw.ellipse([*(centre - radius), *(centre + radius)], fill=colour)
    else:
        rotation = np.array([[np.cos(angle), -np.sin(angle)],
                             [np.sin(angle), np.cos(angle)]])
        points = _unit_outline(name) @ rotation.T * radius + centre
        draw.polygon([tuple(p) for p in points.tolist()], fill=colour)
    image = image.resize((size, size), Image.Resampling.BOX)  # the mean of each 4x4 block
    return np.asarray(image, dtype=np.uint8)


class Shapes(tfds.core.GeneratorBasedBuilder):
    """Labelled images of six shapes, drawn on the fly.

    The zoo needs a built-in dataset that prepares offline in seconds and has
    class labels, so that the conditional GAN can be trained and tested
    without downloading anything.
    """

    VERSION = tfds.core.Version("3.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "2.0.0": "30000/3000 images (was 6000/1000); bright saturated shapes of any hue on dark "
                 "backgrounds (was: both colours anywhere in RGB), upright (was: any rotation), "
                 "shapes 45-85% of the image wide "
                 "(was 35-80%), downsampled by block means (was Lanczos, 2.5x slower to draw): "
                 "learnable by a small GAN in minutes on a CPU.",
        "3.0.0": "Shapes near the centre (within 8% of the side, was anywhere they fit), the circle "
                 "around each 55-90% of the image wide (was 45-85%): the default DCGAN draws all six "
                 "shapes in 5 epochs (README).",
    }

    def _info(self):
        # DatasetInfo directly, not dataset_info_from_configs: the latter looks for
        # README/CITATIONS files under zoo/datasets/, which the package_dir
        # mapping in setup.cfg does not create.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Procedurally drawn 64x64 RGB images, one shape per image "
                "(circle, square, triangle, star, hexagon or cross), upright, near the centre, "
                "with random size and hue, bright and saturated on a plain dark "
                "background. Classes are balanced; nothing is downloaded."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {
            "train": self._generate_examples(TRAIN_SEED, NUM_TRAIN_EXAMPLES),
            "test": self._generate_examples(TEST_SEED, NUM_TEST_EXAMPLES),
        }

    def _generate_examples(self, seed, num_examples):
        for index in range(num_examples):
            label = index % len(CLASS_NAMES)
            rng = np.random.default_rng((seed, index))
            yield index, {"image": draw_shape(rng, label), "label": label}
