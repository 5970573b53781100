"""What the models' SavedModel signatures share: output forms and seeded latents.

It imports nothing of training or export, so models can use it and stay below both.
"""
import tensorflow as tf


def image_outputs(images):
    """Both forms clients ask for: float in [-1, 1] and uint8 in [0, 255]."""
    images = tf.cast(images, tf.float32)
    as_uint8 = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
    return {"images": images, "images_uint8": as_uint8}


def seeded_normal(num_images, dim, seed):
    """Deterministic N(0, I) latents for the `seed` signatures."""
    return tf.random.stateless_normal(tf.stack([num_images, dim]), seed=tf.stack([seed, tf.zeros_like(seed)]))
