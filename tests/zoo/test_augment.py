"""Specification of DiffAugment: random, differentiable, shape-keeping transforms of D's inputs."""
import numpy as np
import pytest
import tensorflow as tf

from zoo import augment
from zoo.errors import UsageError

SEED = tf.constant([3, 4], tf.int64)


def _images(channels=3, batch=8, size=16):
    return tf.random.stateless_uniform([batch, size, size, channels], [0, 1], -1.0, 1.0)


def test_policy_parses_names_and_rejects_unknown_or_repeated_ones():
    assert augment.parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    assert augment.parse_policy("") == ()
    with pytest.raises(UsageError, match="unknown transform colour; known: translation, cutout, color"):
        augment.parse_policy("colour")
    with pytest.raises(UsageError, match="twice"):
        augment.parse_policy("cutout,cutout")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", augment.POLICIES)
def test_each_transform_keeps_the_shape_changes_the_images_and_is_seeded(name, channels):
    images = _images(channels)
    out = augment.diff_augment(images, (name,), SEED)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert not np.allclose(out, images)
    np.testing.assert_array_equal(out, augment.diff_augment(images, (name,), SEED))
    assert not np.array_equal(out, augment.diff_augment(images, (name,), SEED + 1))


@pytest.mark.parametrize("name", ["translation", "cutout"])
def test_translation_and_cutout_keep_values_in_range_filling_with_grey(name):
    images = tf.ones([8, 16, 16, 3])  # all white: whatever is not white was filled in
    out = augment.diff_augment(images, (name,), SEED).numpy()
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert (out == 0).any(axis=(1, 2, 3)).sum() >= 4  # most images had something moved or cut out


def test_translation_moves_pixels_by_at_most_an_eighth_of_the_side():
    image = np.zeros([1, 16, 16, 1], np.float32)
    image[0, 8, 8, 0] = 1.0
    for seed in range(20):
        out = augment.translation(tf.constant(image), tf.constant([seed, 0], tf.int64)).numpy()[0, :, :, 0]
        (y, x), = np.argwhere(out == 1.0)
        assert abs(y - 8) <= 2 and abs(x - 8) <= 2


def test_cutout_greys_a_square_of_half_the_side():
    out = augment.cutout(tf.ones([1, 16, 16, 1]), SEED).numpy()[0, :, :, 0]
    rows, cols = np.nonzero(out == 0)
    assert rows.max() - rows.min() + 1 <= 8 and cols.max() - cols.min() + 1 <= 8
    assert (out == 0).sum() >= 16  # a square of side 8, at least a quarter inside the image


def test_color_shifts_each_image_by_its_own_brightness():
    images = tf.zeros([8, 4, 4, 3])  # grey: saturation and contrast leave it flat
    out = augment.color(images, SEED).numpy()
    per_image = out.reshape(8, -1)
    assert np.allclose(per_image, per_image[:, :1])  # flat images stay flat
    assert (np.abs(per_image[:, 0]) <= 0.5).all() and len(set(per_image[:, 0].round(6))) == 8


def test_gradients_flow_through_every_transform():
    images = tf.Variable(_images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(augment.diff_augment(images, augment.POLICIES, SEED) ** 2)
    gradient = tape.gradient(loss, images)
    assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0


def test_compiles_under_xla_and_stays_seeded():
    # XLA's random-number kernels differ from TensorFlow's, so the values differ; the seeding holds.
    images = _images()
    compiled = tf.function(lambda x: augment.diff_augment(x, augment.POLICIES, SEED), jit_compile=True)
    out = compiled(images)
    assert out.shape == images.shape and not np.allclose(out, images)
    np.testing.assert_array_equal(out, compiled(images))


def test_draws_of_consecutive_seeds_share_no_randomness():
    """A SeedGenerator steps by one: the draws of seed s + 1 must not repeat those of seed s."""
    draws = {index: [augment._uniform(tf.constant([5, step], tf.int64), index, [64]).numpy().tolist()
                     for step in (7, 8)] for index in range(7)}
    every = [tuple(draw) for pair in draws.values() for draw in pair]
    assert len(set(every)) == len(every)
