"""Specification of the generator's weight average: StyleGAN2-ADA's half-life with ramp-up."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import ema


def test_decay_halves_the_old_weights_once_per_half_life():
    # 10k images half-life, batch 100, far into training (no ramp-up cap): 0.5 ** (100 / 10000).
    assert float(ema.decay(10**7, 100, 10_000, rampup=0.05)) == pytest.approx(0.5 ** 0.01)
    assert float(ema.decay(100, 100, 10_000, rampup=0.0)) == pytest.approx(0.5 ** 0.01)


def test_ramp_up_caps_the_half_life_at_a_share_of_the_images_seen():
    # After 2000 images, rampup 0.05: half-life 100 images, not 10000.
    assert float(ema.decay(2000, 100, 10_000, rampup=0.05)) == pytest.approx(0.5)
    # The first step: the average is the network itself.
    assert float(ema.decay(100, 100, 10_000, rampup=0.05)) < 1e-6


def _dense(value):
    layer = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    for w in layer.weights:
        w.assign(tf.fill(w.shape, value))
    return layer


def test_update_moves_the_average_towards_the_network():
    average, network = _dense(0.0), _dense(1.0)
    ema.update(average, network, tf.constant(0.75))
    for w in average.weights:
        np.testing.assert_allclose(w.numpy(), 0.25)
    ema.copy(average, network)
    for w in average.weights:
        np.testing.assert_allclose(w.numpy(), 1.0)


def test_update_works_inside_a_mirrored_replica_step():
    strategy = tf.distribute.MirroredStrategy(["CPU:0"])
    with strategy.scope():
        average, network = _dense(0.0), _dense(1.0)
    strategy.run(tf.function(lambda: ema.update(average, network, tf.constant(0.5))))
    for w in average.weights:
        np.testing.assert_allclose(w.numpy(), 0.5)
