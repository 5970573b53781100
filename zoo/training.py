"""The training loop shared by every model: data, device policy, work directory, resume."""
import dataclasses
import json
import logging
import os

import keras
import tensorflow as tf

from zoo import callbacks, device, metrics, optim
from zoo.config import Config
from zoo.errors import RunMismatchError, UsageError
from zoo.datasets import get_source, make_dataset
from zoo.registry import MODELS

# Flags that may differ when a run is resumed; any other change would mix two experiments.
RESUMABLE_CHANGES = frozenset({"epochs", "steps_per_epoch", "xla", "precision", "strategy",
                               "data_dir", "manual_dir", "batch_size", "workdir", "iw_samples"})


def check_resumable(saved, config):
    changed = sorted(f.name for f in dataclasses.fields(Config)
                     if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name))
    if changed:
        details = ", ".join(f"{n}={getattr(saved, n)!r} there, {getattr(config, n)!r} now" for n in changed)
        raise RunMismatchError(f"{config.workdir} holds a run with other settings ({details}); "
                               f"pass the same flags to resume it, or another --workdir")


def build_model(config, source, policy, steps_per_epoch=None):
    """The registered model, compiled with one Adam per network, in the strategy's scope."""
    model_class = MODELS.get(config.model)
    with policy.strategy.scope():
        model = model_class.from_run(config, source)
        model.compile(**{name: policy.wrap_optimizer(optim.adam(config))
                         for name in model_class.optimizer_names},
                      jit_compile=policy.jit_compile,
                      steps_per_execution=policy.steps_per_execution(config.steps_per_execution, steps_per_epoch))
    return model


def checkpointer(model, directory):
    """A checkpoint of the model (networks, optimisers, seed state) and the epoch count."""
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    # tf.train.Checkpoint does not reach a Keras SeedGenerator through the model: without its
    # state named here, a resumed run would draw again the noise of its first steps.
    checkpoint = tf.train.Checkpoint(model=model, noise_state=model.seed_generator.state, epoch=epoch)
    return checkpoint, tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3), epoch


def paths(workdir):
    return {name: os.path.join(workdir, name) for name in
            ("config.json", "checkpoints", "samples", "tensorboard", "metrics.jsonl", "model.keras", "eval.json")}


def first_test_images(source, config):
    """num -> the first `num` images of the test split: the same every epoch and every resume."""

    def take(num):
        dataset, _ = make_dataset(source, config, source.test_split, batch_size=num, training=False)
        return next(iter(dataset))["images"]

    return take


def write_evaluation(results, files, epoch, step):
    """eval.json holds the latest results; metrics.jsonl gets them as one more line."""
    record = {"epoch": epoch, "step": step, **results}
    with open(files["eval.json"], "w") as f:
        json.dump(record, f, indent=2)
    with open(files["metrics.jsonl"], "a") as f:
        f.write(json.dumps(record) + "\n")


def train(config):
    """Trains `config.model` on `config.dataset`; resumes from the work directory's checkpoint."""
    files = paths(config.workdir)
    if os.path.exists(files["config.json"]):
        with open(files["config.json"]) as f:
            check_resumable(Config.from_json(f.read()), config)
    policy = device.resolve(config.precision, config.xla, config.strategy)
    if config.batch_size % policy.replicas:
        raise UsageError(f"batch_size {config.batch_size} does not split over {policy.replicas} replicas")
    source = get_source(config)
    model_class = MODELS.get(config.model)
    if config.condition_on and not model_class.needs_labels:
        raise UsageError(f"--condition_on makes class labels, which {config.model} does not take: use --model=cgan")
    dataset, num_examples = make_dataset(source, config, source.train_split, batch_size=config.batch_size,
                                         training=True, with_labels=model_class.needs_labels)
    steps = num_examples // config.batch_size
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch) if steps else config.steps_per_epoch
    if not steps:
        raise UsageError(f"{source.name} has {num_examples} training examples: fewer than one batch of "
                         f"{config.batch_size}")

    model = build_model(config, source, policy, steps)
    checkpoint, manager, epoch = checkpointer(model, files["checkpoints"])
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resuming %s at epoch %d, step %d", manager.latest_checkpoint, int(epoch), int(model.step.numpy()))
    os.makedirs(config.workdir, exist_ok=True)
    with open(files["config.json"], "w") as f:
        f.write(config.to_json())
    logging.info("%s on %s: %d steps of %d per epoch, %s, XLA %s, %d replica(s)", config.model, source.name,
                 steps, config.batch_size, policy.precision, "on" if policy.jit_compile else "off",
                 policy.replicas)

    model.fit(dataset, epochs=config.epochs, initial_epoch=int(epoch), steps_per_epoch=steps,
              shuffle=False,  # the pipeline shuffles
              callbacks=[
        callbacks.FailOnNonFinite(),
        callbacks.SampleGrid(model.grid_inputs(config.num_samples, config.seed, first_test_images(source, config)),
                             files["samples"], os.path.join(files["tensorboard"], "samples")),
        callbacks.MetricsLog(files["metrics.jsonl"]),
        keras.callbacks.TensorBoard(files["tensorboard"], write_graph=False),
        callbacks.Checkpoint(manager, epoch, files["model.keras"]),
    ])
    results = metrics.evaluate(model, config, source)
    if results:
        write_evaluation(results, files, int(epoch), int(model.step.numpy()))
    return model
