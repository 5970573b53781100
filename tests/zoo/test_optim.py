"""zoo.optim on several replicas: two logical CPUs stand in for two GPUs.

One subprocess (the logical devices must be set before TensorFlow starts) computes
everything; the tests read its JSON report.
"""
import json
import textwrap

import pytest


TWO_REPLICAS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import dataclasses, keras, numpy as np, zoo
    from zoo import device, optim, training

    report = {}
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    # Latents: 4 calls on 2 replicas with a per-replica batch of 4, and 4 calls on 1 replica with 8.
    with mirrored.scope():
        generator = keras.random.SeedGenerator(7)
    draw = tf.function(lambda: mirrored.run(lambda: optim.latents(generator, 4, 3)))
    calls = [[t.numpy() for t in mirrored.experimental_local_results(draw())] for _ in range(4)]
    single = keras.random.SeedGenerator(7)
    singles = [optim.latents(single, 8, 3).numpy() for _ in range(4)]
    batches = [batch for call in calls for batch in call]
    report["latent_batches"] = len(batches)
    report["latent_batches_repeated"] = sum(np.allclose(a, b) for i, a in enumerate(batches) for b in batches[i + 1:])
    report["latents_as_one_replica"] = all(np.allclose(np.concatenate(c), s) for c, s in zip(calls, singles))

    # DiffAugment of the same images on each of 2 replicas, with the DCGAN's seed generator.
    from zoo.models.dcgan import DCGAN
    with mirrored.scope():
        augmenting = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, diffaugment="translation,cutout")
    same = tf.random.stateless_uniform([2, 32, 32, 3], seed=[3, 4], minval=-1, maxval=1)
    augmented = mirrored.experimental_local_results(tf.function(lambda: mirrored.run(augmenting.augment, (same,)))())
    report["replicas_augment_alike"] = bool(np.allclose(augmented[0], augmented[1]))
    alone = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, diffaugment="translation,cutout")
    report["augments_as_one_replica"] = bool(np.allclose(np.concatenate(augmented),
                                                         alone.augment(tf.concat([same, same], 0))))

    # One training step, 1 replica vs 2, the same global batch, initial weights and seed.
    class Source:
        name, channels, num_classes = "synthetic", 3, 3

    batch = {"images": tf.random.stateless_uniform([8, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1),
             "labels": tf.range(8) % 3}

    def two_steps(config, strategy, initial=None):
        # (initial values, then every replica's copy of every variable) after two steps with `strategy`
        # One MirroredStrategy object for the whole process: two would number their collectives alike.
        policy = device.DevicePolicy(strategy=strategy, precision="float32", jit_compile=False)
        model = training.build_model(config, Source, policy)
        if initial is not None:
            for variable, value in zip(model.weights, initial):
                variable.assign(value)
        before = [w.numpy() for w in model.weights]
        model.fit(tf.data.Dataset.from_tensors(batch).repeat(), epochs=1, steps_per_epoch=2, verbose=0)
        copies = [[np.asarray(c) for c in strategy.experimental_local_results(w.value)] for w in model.weights]
        return model, before, copies

    for name in json.loads(sys.argv[1]):
        config = zoo.Config(model=name, batch_size=8, latent_dim=8, base_filters=4, precision="float32", xla=False,
                            steps_per_execution=1)  # every other flag its default (EMA, DiffAugment, ...)
        model, initial, one = two_steps(config, tf.distribute.get_strategy())
        _, _, two = two_steps(config, mirrored, initial)
        trainable = {id(w) for w in model.trainable_weights}
        floats = [i for i, w in enumerate(model.weights) if keras.backend.is_float_dtype(w.dtype)]
        report[name] = {
            "max_difference": max(float(np.max(np.abs(one[i][0] - two[i][0]))) for i in floats
                                  if id(model.weights[i]) in trainable),
            "max_update": max(float(np.max(np.abs(one[i][0] - initial[i]))) for i in floats
                              if id(model.weights[i]) in trainable),
            "other_max_difference": max(float(np.max(np.abs(one[i][0].astype("float64") - two[i][0])))
                                        for i in range(len(model.weights)) if id(model.weights[i]) not in trainable),
            "other_variables": len(model.weights) - len(trainable),
            "replicas_disagree": [w.path for w, copies in zip(model.weights, two)
                                  if not all(np.array_equal(copies[0], c) for c in copies[1:])],
            "learning_rate": config.learning_rate}

    # mixed_float16's loss scaling when only replica 1's gradients overflow.
    with mirrored.scope():
        weights = keras.Variable([1.0, 2.0])
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
        optimizer.build([weights])
    scale_before = float(optimizer.dynamic_scale.numpy())

    def replica_step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        factor = tf.where(tf.equal(replica, 1), float("inf"), 1.0)
        optim.minimize(optimizer, lambda: tf.reduce_sum(weights * factor), [weights])

    tf.function(lambda: mirrored.run(replica_step))()
    report["overflow_on_one_replica"] = {
        "weights": [v.numpy().tolist() for v in mirrored.experimental_local_results(weights.value)],
        "scale_ratio": float(optimizer.dynamic_scale.numpy()) / scale_before}
    print(json.dumps(report))
""")

MODELS = ["vae", "dcgan", "cgan"]


@pytest.fixture(scope="module")
def report(run_script):
    result = run_script("-c", TWO_REPLICAS, json.dumps(MODELS))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_replicas_never_repeat_a_latent_batch(report):
    assert report["latent_batches"] == 8
    assert report["latent_batches_repeated"] == 0


def test_two_replicas_draw_the_latents_one_replica_draws_for_the_same_global_batch(report):
    assert report["latents_as_one_replica"]


def test_two_replicas_augment_their_shares_of_the_batch_differently(report):
    assert not report["replicas_augment_alike"]


def test_two_replicas_augment_as_one_replica_augments_the_same_global_batch(report):
    assert report["augments_as_one_replica"]


@pytest.mark.parametrize("model", MODELS)
def test_two_steps_on_two_replicas_with_the_default_flags_update_every_variable_as_on_one(report, model):
    result = report[model]
    # Adam's first step moves each weight by about the learning rate; the replicas sum their
    # gradients in another order than one replica does, which float32 rounds differently, and
    # Adam's g / (|g| + eps) magnifies that rounding where a gradient is near eps (measured on
    # CPU: up to 1.2e-3 of the learning rate for the VAE). 1% of a step: any real mismatch
    # (a replica's rows missing, gradients summed twice) moves weights by a whole step.
    assert result["max_update"] > 0.5 * result["learning_rate"]
    assert result["max_difference"] < 1e-2 * result["learning_rate"]
    # Batch-norm moving statistics, EMA weights, counters: one value on every replica (unsynchronised
    # batch norm let each replica keep its own statistics), and one replica's.
    assert result["replicas_disagree"] == []
    assert result["other_max_difference"] < 1e-4, result


def test_an_overflow_on_one_replica_skips_the_step_on_every_replica_and_halves_the_loss_scale(report):
    result = report["overflow_on_one_replica"]
    assert result["weights"] == [[1.0, 2.0], [1.0, 2.0]]
    assert result["scale_ratio"] == 0.5


def test_linear_decay_holds_the_rate_then_falls_to_zero_over_the_last_share_of_the_run():
    from zoo.optim import LinearDecay

    schedule = LinearDecay(1e-3, share=0.25, total_steps=100)
    rates = [float(schedule(step)) for step in (0, 75, 80, 90, 100, 120)]
    assert rates == pytest.approx([1e-3, 1e-3, 8e-4, 4e-4, 0.0, 0.0])


def test_linear_decay_survives_keras_serialisation():
    import keras
    from zoo.optim import LinearDecay

    schedule = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(LinearDecay(1e-3, 0.5, 100)))
    assert float(schedule(75)) == pytest.approx(5e-4)


def test_lr_decay_plans_the_decay_to_end_with_the_steps_still_to_train():
    import keras
    import zoo
    from zoo import optim

    for optimizer in (optim.adam(zoo.Config(lr_decay=0.5)),
                      keras.optimizers.LossScaleOptimizer(optim.adam(zoo.Config(lr_decay=0.5)))):
        assert float(optimizer.learning_rate) == pytest.approx(5e-4)  # unplanned (export, evaluation): constant
        optimizer.iterations.assign(40)  # a resumed run, 60 steps to go: ends at 100, decays from 50
        optim.plan_decay(optimizer, 60)
        assert float(optimizer.learning_rate) == pytest.approx(5e-4)
        optimizer.iterations.assign(75)
        assert float(optimizer.learning_rate) == pytest.approx(2.5e-4)


def test_without_lr_decay_the_rate_is_constant_and_planning_leaves_it():
    import zoo
    from zoo import optim

    optimizer = optim.adam(zoo.Config(lr_decay=0.0))
    optim.plan_decay(optimizer, 10)
    optimizer.iterations.assign(10)
    assert float(optimizer.learning_rate) == pytest.approx(5e-4)
