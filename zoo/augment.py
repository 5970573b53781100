"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

D sees every image, real or generated, through the same random policy, so it cannot
memorise a small training set, and G's gradient flows back through the augmentation
(each transform is a differentiable function of the pixels). Images are in [-1, 1];
with u ~ U(0, 1) drawn per image:

    translation  shift by integers in [-H/8, H/8] along each axis, zeros (grey) shifted in
    cutout       a square of side H/2 at a uniform centre set to 0
    color        x + (u - 1/2); then (x - mean_c x) * 2u + mean_c x (saturation, RGB only);
                 then (x - mean x) * (u + 1/2) + mean x (contrast)

Translation and cutout keep values inside the input's range (they move or grey pixels);
colour, as in DiffAugment, may leave [-1, 1] (by at most a few units).
"""
import tensorflow as tf

from zoo.errors import UsageError
from zoo.optim import replica_rows

POLICIES = ("translation", "cutout", "color")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text):
    """'translation,cutout,color' -> ('translation', 'cutout', 'color'); '' -> () (no augmentation)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise UsageError(f"diffaugment: unknown transform {', '.join(unknown)}; known: {', '.join(POLICIES)} "
                         f"(comma-separated), or '' for none")
    if len(set(names)) != len(names):
        raise UsageError(f"diffaugment names a transform twice: {text!r}")
    return names


def _uniform(seed, index, shape, low=0.0, high=1.0, dtype=tf.float32):
    """U(low, high) of `shape` [batch, ...], per image: under tf.distribute, this replica's rows of the
    global batch's draw (zoo.optim.replica_rows), so replicas sharing a seed augment differently.

    Draw `index` folds its number into `seed` (a hash), rather than adding it: added, draw i of one
    call would reuse draw i - 1 of the call after (a SeedGenerator steps by one), and the latents'.
    """
    draw_seed = tf.random.experimental.stateless_fold_in(seed, index)
    return replica_rows(lambda rows: tf.random.stateless_uniform(
        [rows, *shape[1:]], seed=draw_seed, minval=low, maxval=high, dtype=dtype), shape[0])


def _shift_matrices(shift, size, dtype):
    """[B] integer shifts -> [B, size, size] one-hot maps with out[i] = in[i - shift] (zero outside)."""
    positions = tf.range(size)
    return tf.cast(tf.equal(positions[None, :, None] - shift[:, None, None], positions[None, None, :]), dtype)


def translation(images, seed):
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    max_shift = int(height * TRANSLATION_RATIO + 0.5)
    shift_y = _uniform(seed, 0, [batch], -max_shift, max_shift + 1, tf.int32)
    shift_x = _uniform(seed, 1, [batch], -max_shift, max_shift + 1, tf.int32)
    images = tf.einsum("byk,bkxc->byxc", _shift_matrices(shift_y, height, images.dtype), images)
    return tf.einsum("bxk,bykc->byxc", _shift_matrices(shift_x, width, images.dtype), images)


def cutout(images, seed):
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    side = int(height * CUTOUT_RATIO + 0.5)
    top = _uniform(seed, 2, [batch, 1, 1], 0, height, tf.int32) - side // 2
    left = _uniform(seed, 3, [batch, 1, 1], 0, width, tf.int32) - side // 2
    rows, cols = tf.range(height)[None, :, None], tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return images * tf.cast(~inside, images.dtype)[..., None]


def color(images, seed):
    batch = tf.shape(images)[0]

    def u(index):
        return tf.cast(_uniform(seed, index, [batch, 1, 1, 1]), images.dtype)

    images = images + (u(4) - 0.5)
    if images.shape[-1] > 1:  # saturation needs colour
        mean = tf.reduce_mean(images, axis=-1, keepdims=True)
        images = (images - mean) * (u(5) * 2) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (u(6) + 0.5) + mean


TRANSFORMS = {"translation": translation, "cutout": cutout, "color": color}


def diff_augment(images, policy, seed):
    """`images` through each transform of `policy` in turn, randomness from the stateless `seed` ([2] ints)."""
    for name in policy:
        images = TRANSFORMS[name](images, seed)
    return images
