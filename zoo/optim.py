"""The optimiser step every model's train_step uses."""
import keras
import tensorflow as tf


def adam(config):
    return adam_from(config.learning_rate, config.beta_1)


def adam_from(learning_rate, beta_1):
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


def minimize(optimizer, loss_fn, variables):
    """One step of `optimizer` on `loss_fn()`, the mean loss over this replica's batch.

    Keras sums gradients across replicas, so the loss is divided by their number;
    `scale_loss` is the identity except under a LossScaleOptimizer (mixed_float16).
    Returns the unscaled loss, for the trackers.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
        loss = loss_fn()
        scaled_loss = optimizer.scale_loss(loss / replicas)
    optimizer.apply(tape.gradient(scaled_loss, variables), variables)
    return loss


def latents(seed_generator, batch_size, latent_dim):
    """N(0, I) latents that differ across replicas.

    A SeedGenerator's state is mirrored, so every replica would draw the same
    numbers; folding in the replica id keeps the global batch diverse.
    """
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group if replica else 0
    seed = seed_generator.next() + tf.cast(tf.stack([0, replica_id]), seed_generator.state.dtype)
    return tf.random.stateless_normal([batch_size, latent_dim], seed=seed)
