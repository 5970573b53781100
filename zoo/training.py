"""The training loop shared by every model: data, device policy, work directory, checkpoints, resume."""
import dataclasses
import json
import logging
import os

import keras
import tensorflow as tf

from zoo import callbacks, checkpoints, device, images, metrics, optim, scoring
from zoo.checkpoints import checkpointer  # noqa: F401  also used by zoo.export
from zoo.config import Config, parse_interval
from zoo.errors import Interrupted, RunMismatchError, UsageError
from zoo.files import remove_leftovers, write_text
from zoo.datasets import get_source, make_dataset
from zoo.datasets.pipelines import check_same_data, write_dataset_facts
from zoo.registry import MODELS

# Flags that may differ when a run is resumed; any other change would mix two experiments.
# precision may change only where the optimisers' layout stays (checkpoints.restore_latest_good says).
RESUMABLE_CHANGES = frozenset({"epochs", "steps_per_epoch", "xla", "precision", "strategy",
                               "data_dir", "manual_dir", "batch_size", "workdir", "iw_samples",
                               "eval_every", "checkpoint_every", "keep_checkpoints", "steps_per_execution",
                               "sync_batch_norm"})  # like strategy: how replicas share the work, not what it is


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
    if config.sync_batch_norm is None:  # several replicas compute one replica's update only with it
        config = config.replace(sync_batch_norm=policy.replicas > 1)
    with policy.strategy.scope():
        model = model_class.from_run(config, source)
        model.compile(**{name: policy.wrap_optimizer(optim.adam(config))
                         for name in model_class.optimizer_names},
                      jit_compile=policy.jit_compile,
                      steps_per_execution=policy.steps_per_execution(config.steps_per_execution, steps_per_epoch))
    return model


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
    write_text(files["eval.json"], json.dumps(record, indent=2))
    log_evaluation(record, files)


def log_evaluation(record, files):
    """Appends `record` to metrics.jsonl unless it holds it already (a rerun after a kill between the two)."""
    if os.path.isfile(files["metrics.jsonl"]):
        with open(files["metrics.jsonl"]) as f:
            if any(line.strip() and json.loads(line) == record for line in f):
                return
    with open(files["metrics.jsonl"], "a") as f:
        f.write(json.dumps(record) + "\n")


def final_evaluation(files, step):
    """The end-of-training evaluation in eval.json if it is of `step`; None otherwise."""
    if not os.path.isfile(files["eval.json"]):
        return None
    with open(files["eval.json"]) as f:
        record = json.load(f)
    return record if record.get("step") == step else None


def preemption_callbacks(strategy, manager, model, saver):
    """Multi-worker: TensorFlow's PreemptionCheckpointHandler, so on SIGTERM every worker saves at one step."""
    if not device.is_multi_worker(strategy):
        return []

    def stop():
        raise Interrupted(f"stopped by SIGTERM at step {int(model.step.numpy())}, saved by every worker in "
                          f"{manager.directory}: rerun the same command on every worker to resume")

    handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, manager, termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=stop, grace_period=0))
    return [callbacks.SaveOnPreemption(handler, saver)]


def fit_under_multi_worker(model):
    """Keras 3.15's fit under MultiWorkerMirroredStrategy reduces a sample batch (a dict: refused) and each
    step's scalar results over axis 0 (a scalar has none). The zoo's models are built already, so the
    symbolic build is skipped, and the step's results are given that axis."""
    model._maybe_symbolic_build = lambda **kwargs: None  # noqa: SLF001
    step = model.train_step
    model.train_step = lambda batch: {name: tf.reshape(value, [1]) for name, value in step(batch).items()}


def chief_decides(strategy, chief):
    """better -> the chief's verdict, on every worker: only the chief knows the best score so far (the
    others' run directories are temporary), and all must take part in the save it decides."""
    agree = device.agreement(strategy)
    return lambda better: agree(better and chief)


def steps_to_train(progress, steps_per_epoch, epochs):
    """The steps `train` will run from `progress` (as its fits do): the rest of an epoch begun, then whole
    epochs up to `epochs`."""
    epoch, epoch_steps = int(progress.epoch), int(progress.epoch_steps)
    if epoch >= epochs:
        return 0
    return (steps_per_epoch - epoch_steps if epoch_steps else 0) + (epochs - epoch - (1 if epoch_steps else 0)) * \
        steps_per_epoch


def read_saved_config(workdir):
    """The Config a run directory was trained with; None for a new run."""
    path = paths(workdir)["config.json"]
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return Config.from_json(f.read())


def train(config):
    """Trains `config.model` on `config.dataset`; resumes from the work directory's last good checkpoint.

    Raises Interrupted when SIGTERM or SIGINT stopped it (after saving), Diverged on a non-finite
    loss, UsageError (DamagedCheckpoint, RunMismatchError ...) for what the user can fix.
    """
    saved = read_saved_config(config.workdir)
    if saved:
        check_resumable(saved, config)
    keras.utils.set_random_seed(config.seed)  # the weights' initialisers, so one command gives one run
    policy = device.resolve(config.precision, config.xla, config.strategy)
    if config.batch_size % policy.replicas:
        raise UsageError(f"batch_size {config.batch_size} does not split over {policy.replicas} replicas")
    source = get_source(config)
    model_class = MODELS.get(config.model)
    if config.condition_on and not model_class.needs_labels:
        raise UsageError(f"--condition_on makes class labels, which {config.model} does not take: use --model=cgan")

    def training_data(skip_examples):
        return make_dataset(source, config, source.train_split, batch_size=config.batch_size, training=True,
                            with_labels=model_class.needs_labels, skip_examples=skip_examples)

    _, num_examples = training_data(0)
    if saved:
        check_same_data(source, config.workdir)  # on every worker: all read the shared run directory
    steps = num_examples // config.batch_size
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch) if steps else config.steps_per_epoch
    else:  # a pass of the data, cut to whole executions: the passes are one stream, so none is lost,
        # and an epoch of prime length (937 steps of Fashion-MNIST at 64) would run one step per call
        steps -= steps % (min(policy.steps_per_execution(config.steps_per_execution), steps) or 1)
    if not steps:
        raise UsageError(f"{source.name} has {num_examples} training examples: fewer than one batch of "
                         f"{config.batch_size}")

    model = build_model(config, source, policy, steps)
    if device.is_multi_worker(policy.strategy):
        fit_under_multi_worker(model)
    chief = device.is_chief(policy.strategy)
    with device.worker_directory(config.workdir, chief) as workdir:
        files = paths(workdir)
        remove_leftovers(workdir)  # of a process killed while writing one
        write_dataset_facts(source, workdir)  # so export needs the run directory only, not the data
        checkpoint, _, progress = checkpointer(model, paths(config.workdir)["checkpoints"])
        restored = checkpoints.restore_latest_good(checkpoint, paths(config.workdir)["checkpoints"], repair=chief)
        if restored:
            logging.info("Resuming %s at epoch %d, step %d", restored, int(progress.epoch), int(model.step.numpy()))
        # Lines past the restored step (every line, when a run died before its first checkpoint) are trained
        # and logged again.
        callbacks.MetricsLog.forget_after(files["metrics.jsonl"], int(model.step.numpy()))
        os.makedirs(workdir, exist_ok=True)
        manager = tf.train.CheckpointManager(checkpoint, files["checkpoints"], max_to_keep=config.keep_checkpoints)
        logging.info("%s on %s: %d steps of %d per epoch, %s, XLA %s, %d replica(s)", config.model, source.name,
                     steps, config.batch_size, policy.precision, "on" if policy.jit_compile else "off",
                     policy.replicas)
        saver = callbacks.Checkpoint(
            manager, progress, steps_per_epoch=steps, batch_size=config.batch_size,
            interval=parse_interval(config.checkpoint_every), keras_path=files["model.keras"],
            before_first_save=lambda: write_text(files["config.json"], config.to_json()),
            agree=device.agreement(policy.strategy))
        saver.set_model(model)  # its save_keras serves the end of a run that fit nothing
        stop = callbacks.StopOnSignal(device.stop_signals(policy.strategy))
        grid = callbacks.SampleGrid(model.grid_inputs(config.num_samples, config.seed, first_test_images(source, config)),
                                    files["samples"], os.path.join(files["tensorboard"], "samples"))
        grid.set_model(model)
        fit_callbacks = [
            callbacks.FailOnNonFinite(lambda: saver.last_saved),
            stop,
            grid,
            callbacks.LearningRates(),  # before the logs that write them
            callbacks.MetricsLog(files["metrics.jsonl"]),  # before the checkpoint: see MetricsLog
            keras.callbacks.TensorBoard(files["tensorboard"], write_graph=False),
            saver,  # records the progress that SaveOnPreemption may save
            *preemption_callbacks(policy.strategy, manager, model, saver),
            *scoring.training_callbacks(config, source, workdir, chief_decides(policy.strategy, chief),
                                        stopping=lambda: stop.received is not None),
        ]

        def fit(epochs, steps_per_epoch):
            # Keras runs whole executions: each fit's steps must be a multiple of steps per execution.
            per_execution = policy.steps_per_execution(config.steps_per_execution, steps_per_epoch)
            if per_execution != model.steps_per_execution:
                model.steps_per_execution, model.train_function = per_execution, None  # traced again
            dataset, _ = training_data(int(progress.examples))
            model.fit(dataset, epochs=epochs, initial_epoch=int(progress.epoch), steps_per_epoch=steps_per_epoch,
                      shuffle=False, callbacks=fit_callbacks)  # the pipeline shuffles

        trained_from = int(model.step.numpy())
        with stop:
            if int(progress.epoch_steps) >= steps:  # --steps_per_epoch lowered on resume: that epoch is done
                progress.epoch.assign_add(1)
                progress.epoch_steps.assign(0)
            for name in model_class.optimizer_names:
                optim.plan_decay(getattr(model, name), steps_to_train(progress, steps, config.epochs))
            if int(progress.epoch_steps) and int(progress.epoch) < config.epochs:
                fit(int(progress.epoch) + 1, steps - int(progress.epoch_steps))  # the rest of that epoch
            if not stop.received and int(progress.epoch) < config.epochs:
                fit(config.epochs, steps)
        if stop.received:
            raise Interrupted(f"stopped by {stop.received} at step {int(model.step.numpy())}, checkpoint "
                              f"{saver.last_saved} saved: rerun the same command to resume")
        # The last epoch's grid and model.keras, had a signal or a kill cut its end short (or
        # --steps_per_epoch, lowered on resume, closed it without training).
        if not os.path.exists(grid.path(int(progress.epoch))):
            grid.draw(int(progress.epoch))
        if saver.keras_epoch != int(progress.epoch):
            saver.save_keras(int(progress.epoch))
        step = int(model.step.numpy())
        finished = final_evaluation(files, step) if step == trained_from else None
        # A finished run, run again: nothing new to score. Only the chief holds eval.json, and every
        # worker must take part in an evaluation (its collectives), so the chief decides for all.
        if chief_decides(policy.strategy, chief)(finished is not None):
            if finished:
                log_evaluation(finished, files)
            return model
        images.timelapse(files["samples"], os.path.join(workdir, "timelapse.gif"))  # the run at a glance
        results = metrics.evaluate(model, config, source)
        if results:
            write_evaluation(results, files, int(progress.epoch), step)
    return model
