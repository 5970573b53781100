"""An exponential moving average of a network's weights, with a decay that suits short runs.

Samples from the averaged generator are smoother and steadier than from the raw one,
whose weights jitter from step to step (Karras et al. 2018; Yazici et al. 2019). The decay
follows StyleGAN2-ADA (Karras et al. 2020): a half-life counted in training images, capped
at a share of the images seen so far so the average does not drag the random start along
in a run of a few minutes:

    half_life = min(half_life_images, rampup * images_seen)       (rampup 0: no cap)
    beta      = 0.5 ** (batch_images / half_life)
    average   = beta * average + (1 - beta) * weights              (every weight, moving statistics too)
"""
import tensorflow as tf


def decay(images_seen, batch_images, half_life_images, rampup):
    """beta of one update, as a float32 tensor."""
    images_seen = tf.cast(images_seen, tf.float32)
    half_life = tf.constant(float(half_life_images))
    if rampup:
        half_life = tf.minimum(half_life, rampup * images_seen)
    return tf.pow(0.5, tf.cast(batch_images, tf.float32) / tf.maximum(half_life, 1e-8))


def update(average, network, beta):
    """average <- beta * average + (1 - beta) * network, weight by weight (the two share one architecture).

    Under tf.distribute the replicas hold the same weights and beta, so the update is made
    once, in cross-replica context, on every copy.
    """
    def apply(strategy, beta):
        beta = strategy.experimental_local_results(beta)[0]
        for averaged, current in zip(average.weights, network.weights):
            averaged.assign(current + tf.cast(beta, current.dtype) * (averaged - current))

    replica = tf.distribute.get_replica_context()
    if replica is None:  # already in cross-replica context
        apply(tf.distribute.get_strategy(), beta)
    else:
        replica.merge_call(apply, args=(beta,))


def copy(average, network):
    for averaged, current in zip(average.weights, network.weights):
        averaged.assign(current)
