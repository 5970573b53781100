"""The optimiser step every model's train_step uses, and the randomness it draws, on any number of replicas."""
import keras
import tensorflow as tf


def adam(config):
    """The run's Adam. With --lr_decay its rate is a LinearDecay, in every model built from the run:
    a float rate is a variable in the checkpoint, a schedule is not, so the two do not restore
    each other. The run's length is set when training starts (plan_decay)."""
    return adam_from(LinearDecay(config.learning_rate, config.lr_decay) if config.lr_decay else config.learning_rate,
                     config.beta_1)


def adam_from(learning_rate, beta_1):
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


@keras.saving.register_keras_serializable(package="zoo")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, then falling linearly to 0 over the last `share` of `total_steps` (pix2pix's schedule).

    A GAN at a constant rate keeps moving around where it got to; the fall lets the end of a fixed
    budget settle. Measured (docs/results.md): it helped 20-minute runs a little and cost 5-minute
    ones more, hence off by default. Counted in the optimiser's updates, which the checkpoint keeps.
    `total_steps` None (a model built to export or evaluate): constant.
    """

    def __init__(self, learning_rate, share, total_steps=None):
        self.learning_rate, self.share, self.total_steps = float(learning_rate), float(share), total_steps

    def __call__(self, step):
        if self.total_steps is None:
            return tf.constant(self.learning_rate)
        remaining = (self.total_steps - tf.cast(step, tf.float32)) / max(self.share * self.total_steps, 1.0)
        return self.learning_rate * tf.clip_by_value(remaining, 0.0, 1.0)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "share": self.share, "total_steps": self.total_steps}


def plan_decay(optimizer, steps_to_train):
    """Ends `optimizer`'s LinearDecay, if it has one, after `steps_to_train` more updates.

    Set when a run (re)starts, before its train function is traced: the length is the updates made
    so far plus the steps this invocation will train, so an unchanged resume keeps the first plan,
    and a resume with other --epochs, --steps_per_epoch or --batch_size decays to 0 at its new end
    (the rate jumps to what the new length gives at this step). Under mixed_float16 a step the loss
    scaler skips makes no update: the run then ends that many updates short of 0, and a resume
    re-plans from the updates made (each skip is a few per thousand steps).
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's Adam
    schedule = inner._learning_rate  # Keras 3 keeps the schedule there; `learning_rate` is its value now
    if isinstance(schedule, LinearDecay):
        schedule.total_steps = int(inner.iterations.numpy()) + steps_to_train


def step_counter():
    """The model's count of training steps, checkpointed with it. An optimiser's `iterations` would
    not do: a LossScaleOptimizer (mixed_float16) leaves it alone on a step it skips, and the data
    position, epochs and checkpoint numbers would drift from the batches trained."""
    return keras.Variable(0, dtype="int64", trainable=False, name="steps_trained", aggregation="only_first_replica")


def _replica():
    """(this replica's id, number of replicas in sync); (0, 1) outside a strategy."""
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: one copy of everything
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def minimize(optimizer, loss_fn, variables):
    """One step of `optimizer` on `loss_fn()`, the mean loss over this replica's batch.

    Keras sums gradients across replicas, so the loss is divided by their number;
    `scale_loss` is the identity except under a LossScaleOptimizer (mixed_float16).
    Returns the unscaled loss, for the trackers.
    """
    _, replicas = _replica()
    with tf.GradientTape() as tape:
        loss = loss_fn()
        scaled_loss = optimizer.scale_loss(loss / replicas)
    gradients = tape.gradient(scaled_loss, variables)
    if replicas > 1 and isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        gradients = _non_finite_on_every_replica_if_on_one(gradients)
    optimizer.apply(gradients, variables)
    return loss


def _non_finite_on_every_replica_if_on_one(gradients):
    """Makes the LossScaleOptimizer's finite check agree across replicas.

    Keras 3's check runs on each replica's own gradients before they are summed
    (and under MirroredStrategy uses replica 0's verdict for all): an overflow on
    replica 1 alone would be summed into the weights, or the replicas would take
    different branches around a collective. One scalar all-reduce shares the verdict.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
    overflows = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32))
    poison = tf.where(overflows > 0, float("nan"), 0.0)
    return [None if g is None else g + tf.cast(poison, g.dtype) for g in gradients]


def latents(seed_generator, batch_size, latent_dim):
    """N(0, I) latents [batch_size, latent_dim] for this replica's share of the global batch.

    The SeedGenerator's state is mirrored, so every replica gets the same seed; each
    draws the whole global batch from it and keeps its own rows. So the latents are a
    function of the position in the global batch: R replicas see exactly the latents
    one replica sees with the same global batch, and no replica repeats another's, at
    this call or any other. (Adding the replica id to the seed's counter, as before,
    made replica r at call c draw what replica 0 draws at call c + r.)
    """
    seed = seed_generator.next()
    return replica_rows(lambda rows: tf.random.stateless_normal([rows, latent_dim], seed=seed), batch_size)


def replica_rows(draw, batch_size):
    """This replica's `batch_size` rows of `draw(global batch size)`, random rows from a stateless seed.

    Under tf.distribute a mirrored seed is every replica's: drawing only its own rows from
    it, each replica would repeat the others' draws. Drawing the global batch's rows and
    keeping its own makes the draws a function of the position in the global batch, as
    one replica with the global batch would make them.
    """
    replica, replicas = _replica()
    if replicas == 1:
        return draw(batch_size)
    return draw(batch_size * replicas)[replica * batch_size:(replica + 1) * batch_size]
