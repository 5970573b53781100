"""Per-example losses as pure functions of logits and distribution parameters.

Every function returns one value per example (shape [batch]); the model decides
how to reduce it (see `zoo.optim.minimize`). Working from logits with softplus keeps
`-log sigmoid(x) = softplus(-x)` finite where `log(sigmoid(x))` would underflow.
"""
import math

import tensorflow as tf


def _flatten(x):
    return tf.reshape(x, [tf.shape(x)[0], -1])


def discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), with D = sigmoid(logits)."""
    return tf.nn.softplus(-_flatten(real_logits)[:, 0]) + tf.nn.softplus(_flatten(fake_logits)[:, 0])


def generator_loss(fake_logits):
    """Non-saturating generator loss -log D(G(z))."""
    return tf.nn.softplus(-_flatten(fake_logits)[:, 0])


def r1_penalty(real_input_gradients, gamma):
    """R1 (Mescheder et al. 2018): (gamma / 2) ||grad_x D(x)||^2 of each real image x."""
    return 0.5 * gamma * tf.reduce_sum(tf.square(_flatten(real_input_gradients)), axis=1)


def gaussian_kl(mean, log_variance):
    """KL(N(mean, exp(log_variance)) || N(0, I)), summed over latent dimensions."""
    return 0.5 * tf.reduce_sum(tf.exp(log_variance) + tf.square(mean) - 1.0 - log_variance, axis=-1)


def gaussian_nll(x, mean, log_variance):
    """-log N(x; mean, exp(log_variance)) of a diagonal Gaussian, summed over the last axis."""
    return 0.5 * tf.reduce_sum(math.log(2 * math.pi) + log_variance
                               + tf.square(x - mean) * tf.exp(-log_variance), axis=-1)


def bernoulli_nll(targets, logits):
    """-log p(x | logits) for pixels x in [0, 1], summed over all pixels and channels."""
    return tf.reduce_sum(_flatten(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)), axis=1)


def discretized_logistic_nll(targets, mean, log_scale, bins=256):
    """-log P(x) of 8-bit pixels scaled to [-1, 1] under a logistic discretised into `bins` bins.

    The edge bins take the tails, so P sums to one over the 256 values and the
    result is a true negative log-likelihood in nats (PixelCNN++, Salimans et al. 2017).
    """
    half_bin = 1.0 / (bins - 1)
    inv_scale = tf.exp(-log_scale)
    centred = targets - mean
    # A bin's mass is symmetric about the mean. Taken on the lower side, both CDFs are
    # small and their difference keeps its float32 precision; near 1 it would cancel.
    lower = -tf.abs(centred)
    cdf_delta = tf.sigmoid(inv_scale * (lower + half_bin)) - tf.sigmoid(inv_scale * (lower - half_bin))
    log_cdf_plus = -tf.nn.softplus(-inv_scale * (centred + half_bin))  # log P(X <= x) at the lowest bin
    log_one_minus_cdf_minus = -tf.nn.softplus(inv_scale * (centred - half_bin))  # log P(X >= x) at the top
    mid = inv_scale * centred
    # Where the bin is too narrow for the difference of CDFs, use density * bin width.
    log_pdf_mid = mid - log_scale - 2.0 * tf.nn.softplus(mid) + math.log(2 * half_bin)
    log_prob_mid = tf.where(cdf_delta > 1e-5, tf.math.log(tf.maximum(cdf_delta, 1e-12)), log_pdf_mid)
    log_prob = tf.where(targets < -0.999, log_cdf_plus,
                        tf.where(targets > 0.999, log_one_minus_cdf_minus, log_prob_mid))
    return -tf.reduce_sum(_flatten(log_prob), axis=1)

