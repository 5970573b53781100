"""The per-example losses equal their formulas, worked by hand."""
import math

import numpy as np
import pytest
import tensorflow as tf

from zoo import losses

PIXELS = np.arange(256) / 127.5 - 1.0  # the 256 values of an 8-bit pixel, scaled to [-1, 1]


def _logistic_cdf(x, mean, scale):
    return 1.0 / (1.0 + np.exp(-(x - mean) / scale))


def test_gan_losses_at_an_undecided_discriminator():
    # D(x) = sigmoid(0) = 1/2: each term is -log(1/2).
    zeros = tf.zeros([3, 1])
    np.testing.assert_allclose(losses.discriminator_loss(zeros, zeros), [2 * math.log(2)] * 3, rtol=1e-6)
    np.testing.assert_allclose(losses.generator_loss(zeros), [math.log(2)] * 3, rtol=1e-6)


def test_gaussian_kl_of_a_known_gaussian():
    # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - log s^2) / 2 per dimension, summed:
    # dimension 1: m=1, s^2=1 -> 1/2; dimension 2: m=0, s^2=2 -> (1 - log 2)/2.
    mean = tf.constant([[1.0, 0.0], [0.0, 0.0]])
    log_variance = tf.constant([[0.0, math.log(2.0)], [0.0, 0.0]])
    np.testing.assert_allclose(losses.gaussian_kl(mean, log_variance), [1.0 - 0.5 * math.log(2.0), 0.0],
                               rtol=1e-6, atol=1e-7)


def test_gaussian_nll_of_a_known_point():
    # -log N(x=2; 1, 4) = log(2 pi 4)/2 + (2-1)^2/(2*4), plus -log N(0; 0, 1) = log(2 pi)/2.
    value = losses.gaussian_nll(tf.constant([[2.0, 0.0]]), tf.constant([[1.0, 0.0]]),
                                tf.constant([[math.log(4.0), 0.0]]))
    expected = 0.5 * math.log(8 * math.pi) + 1.0 / 8.0 + 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(value, [expected], rtol=1e-6)


def test_gaussian_kl_is_the_expected_log_density_ratio():
    # KL(q || p) = E_q[log q(z) - log p(z)]: the analytic form agrees with a Monte Carlo average.
    mean, log_variance = tf.constant([[0.5, -1.0, 2.0]]), tf.constant([[0.3, -0.7, 0.0]])
    z = mean + tf.exp(0.5 * log_variance) * tf.random.stateless_normal([200_000, 3], seed=[1, 2])
    monte_carlo = tf.reduce_mean(losses.gaussian_nll(z, 0.0, 0.0) - losses.gaussian_nll(z, mean, log_variance))
    np.testing.assert_allclose(monte_carlo, losses.gaussian_kl(mean, log_variance)[0], rtol=0.02)


def test_bernoulli_nll_of_known_pixels_sums_over_pixels_and_channels():
    # One 2x1x2 image. p = sigmoid(logit): -log p for a 1, -log(1 - p) for a 0, and
    # -(t log p + (1-t) log(1-p)) for a grey t.
    logits = tf.constant([[[[math.log(3.0), 0.0]], [[0.0, -math.log(3.0)]]]])  # p = 3/4, 1/2, 1/2, 1/4
    targets = tf.constant([[[[1.0, 0.0]], [[0.5, 0.0]]]])
    expected = -math.log(0.75) + math.log(2) + math.log(2) - math.log(0.75)
    np.testing.assert_allclose(losses.bernoulli_nll(targets, logits), [expected], rtol=1e-6)


def test_bernoulli_nll_is_finite_for_confident_wrong_logits():
    value = losses.bernoulli_nll(tf.constant([[1.0]]), tf.constant([[-200.0]]))
    np.testing.assert_allclose(value, [200.0], rtol=1e-6)


@pytest.mark.parametrize("mean,log_scale", [(0.0, 0.0), (0.3, -2.0), (-0.97, -4.0), (1.0, -7.0),
                                            (0.1, -7.0), (2.5, 1.0)])
def test_discretized_logistic_sums_to_one_over_the_256_pixel_values(mean, log_scale):
    targets = tf.constant(PIXELS[:, None], tf.float32)  # 256 one-pixel "images"
    nll = losses.discretized_logistic_nll(targets, tf.fill([256, 1], mean), tf.fill([256, 1], log_scale))
    assert nll.shape == (256,)
    np.testing.assert_allclose(np.exp(-nll.numpy()).sum(), 1.0, atol=1e-3)


def test_discretized_logistic_is_the_cdf_difference_of_each_bin():
    # Interior bins: F(x + 1/255) - F(x - 1/255); the edge bins take the tails.
    mean, scale = 0.2, 0.1
    probabilities = _logistic_cdf(PIXELS + 1 / 255, mean, scale) - _logistic_cdf(PIXELS - 1 / 255, mean, scale)
    probabilities[0] = _logistic_cdf(PIXELS[0] + 1 / 255, mean, scale)
    probabilities[-1] = 1.0 - _logistic_cdf(PIXELS[-1] - 1 / 255, mean, scale)
    nll = losses.discretized_logistic_nll(tf.constant(PIXELS[:, None], tf.float32), tf.fill([256, 1], mean),
                                          tf.fill([256, 1], math.log(scale)))
    np.testing.assert_allclose(nll, -np.log(probabilities), rtol=1e-4)


def test_discretized_logistic_sums_over_pixels_and_channels():
    targets = tf.constant(PIXELS[[[0, 128], [200, 255]]][None, ..., None], tf.float32)  # [1, 2, 2, 1]
    one_each = [losses.discretized_logistic_nll(tf.reshape(t, [1, 1]), tf.zeros([1, 1]), tf.zeros([1, 1]))
                for t in tf.reshape(targets, [-1])]
    total = losses.discretized_logistic_nll(targets, tf.zeros_like(targets), tf.zeros_like(targets))
    np.testing.assert_allclose(total, tf.add_n(one_each), rtol=1e-6)
