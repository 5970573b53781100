"""Specification of the procedurally drawn `shapes` dataset."""
import collections
import hashlib
import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from zoo.datasets import shapes

NUM_CLASSES = len(shapes.CLASS_NAMES)


def _draw(seed, label):
    return shapes.draw_shape(np.random.default_rng(seed), label)


def _shape_mask(image):
    """Pixels that differ clearly from the background, read at the top-left corner.

    A corner is always background: the shape lies inside a circle inside the image.
    """
    return np.abs(image.astype(int) - image[0, 0].astype(int)).sum(axis=-1) > 30


def test_class_names_are_the_six_shapes_in_order():
    assert shapes.CLASS_NAMES == ("circle", "square", "triangle", "star", "hexagon", "cross")


def test_draw_shape_returns_a_uint8_rgb_image():
    image = _draw(0, 0)
    assert image.dtype == np.uint8
    assert image.shape == (64, 64, 3)
    assert shapes.draw_shape(np.random.default_rng(0), 0, size=32).shape == (32, 32, 3)


@pytest.mark.parametrize("label", range(NUM_CLASSES))
def test_draw_shape_is_deterministic_for_a_seed(label):
    np.testing.assert_array_equal(_draw((7, 3), label), _draw((7, 3), label))


def test_draw_shape_differs_across_seeds():
    images = [_draw((0, index), 0) for index in range(10)]
    for a, b in itertools.combinations(images, 2):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("label", range(NUM_CLASSES))
def test_every_class_draws_a_bright_shape_on_a_dark_background(label):
    for seed in range(20):
        image = _draw(seed, label)
        mask = _shape_mask(image)
        # 55%-90% of the image wide: never a speck, never the whole image.
        assert 0.08 < mask.mean() < 0.65, (label, seed, mask.mean())
        brightest = image.max(axis=-1)  # HSV value
        assert brightest[0, 0] <= 0.2 * 255 + 1, (label, seed)  # dark background
        assert brightest.max() >= 0.85 * 255 - 1, (label, seed)  # bright shape


# How far above its circumcentre (radius r) the bounding box's centre of an upright shape lies, in r:
# the triangle spans -r to r/2, the star -r to r cos 36 degrees; the others are symmetric.
_BOX_OFFSET = {"triangle": 0.25, "star": (1 - np.cos(np.pi / 5)) / 2}


@pytest.mark.parametrize("label", range(NUM_CLASSES))
def test_every_shape_is_near_the_centre(label):
    # Version 3: a shape's centre is at most 8% of the side from the image's (a DCGAN draws
    # the six shapes in minutes; shapes anywhere it did not).
    name = shapes.CLASS_NAMES[label]
    for seed in range(60):
        image = _draw(seed, label)
        mask = _shape_mask(image)
        rows, cols = np.nonzero(mask)
        # The circumscribed circle is 55-90% of the side; the square, the narrowest in its circle,
        # spans 1/sqrt(2) of that circle's diameter.
        extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
        assert 0.55 * 64 / np.sqrt(2) - 2 <= extent <= 0.9 * 64 + 2, (name, seed, extent)
        radius = 0.9 * 32  # at most
        row_centre = (rows.min() + rows.max()) / 2 + _BOX_OFFSET.get(name, 0) * radius
        col_centre = (cols.min() + cols.max()) / 2
        allowance = 0.08 * 64 + 1 + (_BOX_OFFSET.get(name, 0) * radius if name in _BOX_OFFSET else 0)
        assert abs(row_centre - 31.5) <= allowance and abs(col_centre - 31.5) <= 0.08 * 64 + 1, (
            name, seed, row_centre, col_centre)


def test_classes_differ_from_each_other():
    for seed in range(5):
        # Same seed: same position, size, rotation and colours; only the shape changes.
        masks = [_shape_mask(_draw(seed, label)) for label in range(NUM_CLASSES)]
        for a, b in itertools.combinations(range(NUM_CLASSES), 2):
            names = shapes.CLASS_NAMES[a], shapes.CLASS_NAMES[b]
            assert (masks[a] ^ masks[b]).sum() > 20, (seed, names)


@pytest.fixture(scope="module")
def data_dir():
    """tfds's default data_dir, where the training tests prepare the dataset too: prepared once."""
    builder = tfds.builder("shapes")
    builder.download_and_prepare()
    return builder.data_dir_root


def test_builder_is_registered_as_shapes():
    builder = tfds.builder("shapes", data_dir="/nonexistent")
    assert isinstance(builder, shapes.Shapes)
    assert str(builder.info.version) == "3.0.0"
    assert builder.info.features["label"].names == list(shapes.CLASS_NAMES)


def test_splits_have_30000_train_and_3000_test_examples(data_dir):
    splits = tfds.builder("shapes", data_dir=data_dir).info.splits
    assert splits["train"].num_examples == shapes.NUM_TRAIN_EXAMPLES == 30000
    assert splits["test"].num_examples == shapes.NUM_TEST_EXAMPLES == 3000


@pytest.mark.parametrize("split", ["train", "test"])
def test_labels_cover_all_six_classes_in_balance(data_dir, split):
    ds = tfds.load("shapes", split=split, data_dir=data_dir, download=False,
                   decoders={"image": tfds.decode.SkipDecoding()})
    labels = collections.Counter(int(ex["label"]) for ex in tfds.as_numpy(ds))
    assert sorted(labels) == list(range(NUM_CLASSES))
    assert max(labels.values()) - min(labels.values()) <= 1


def test_images_are_uint8_64x64x3(data_dir):
    ds = tfds.load("shapes", split="test", data_dir=data_dir, download=False, as_supervised=True)
    assert ds.element_spec[0].shape == (64, 64, 3)
    for image, _ in tfds.as_numpy(ds.take(50)):
        assert image.dtype == np.uint8 and image.shape == (64, 64, 3)


def test_prepared_split_is_exactly_the_seeded_drawings(data_dir):
    # Determinism: the stored test split is, image for image, what draw_shape gives
    # for (TEST_SEED, index), so re-preparing anywhere reproduces the same bytes.
    def digest(image, label):
        return hashlib.sha1(image.tobytes() + bytes([label])).hexdigest()

    ds = tfds.load("shapes", split="test", data_dir=data_dir, download=False, as_supervised=True)
    prepared = collections.Counter(digest(image, int(label)) for image, label in tfds.as_numpy(ds))
    expected = collections.Counter(
        digest(_draw((shapes.TEST_SEED, index), index % NUM_CLASSES), index % NUM_CLASSES)
        for index in range(shapes.NUM_TEST_EXAMPLES))
    assert prepared == expected
