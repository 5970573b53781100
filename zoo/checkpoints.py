"""What a run's checkpoint holds, and resuming from the newest one that reads whole."""
import dataclasses
import glob
import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from zoo.errors import DamagedCheckpoint


@dataclasses.dataclass
class Progress:
    """How far a run has got, saved in every checkpoint beside the model."""

    epoch: tf.Variable  # completed epochs
    epoch_steps: tf.Variable  # steps trained into the next epoch (a checkpoint taken mid-epoch)
    examples: tf.Variable  # training examples drawn so far: where the input stream resumes

    @classmethod
    def start(cls):
        return cls(*(tf.Variable(0, dtype=tf.int64, trainable=False, name=f.name) for f in dataclasses.fields(cls)))


PARTS = ("model", "noise_state", *(f.name for f in dataclasses.fields(Progress)))


def checkpointer(model, directory, keep=3):
    """(checkpoint, manager, progress): the model (networks, optimisers, any other variable it holds,
    EMA weights included), the noise state and the run's progress."""
    progress = Progress.start()
    # tf.train.Checkpoint does not reach a Keras SeedGenerator through the model: without its
    # state named here, a resumed run would draw again the noise of its first steps.
    checkpoint = tf.train.Checkpoint(model=model, noise_state=model.seed_generator.state,
                                     **vars(progress))  # (dataclasses.asdict would copy the variables)
    saved = {id(item) for item in tf.train.TrackableView(checkpoint).descendants()}
    unsaved = [variable.path for variable in model.variables if id(variable) not in saved]
    if unsaved:  # a model's bug, so fail at once rather than lose them at the first resume
        raise ValueError(f"{type(model).__name__} holds variables a checkpoint would not save: {', '.join(unsaved)}; "
                         f"keep them as attributes or in a keras.Model or layer, not in a Python list or dict")
    return checkpoint, tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep), progress


def all_finite(model):
    """Whether the weights and the optimisers' states are all finite: only then is a checkpoint written."""
    variables = [*model.weights, *(v for name in model.optimizer_names for v in getattr(model, name).variables)]
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables if keras.backend.is_float_dtype(v.dtype))


def damage(path):
    """None if checkpoint `path` reads whole (every tensor's checksum verified), else why not."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001  the reader raises OpError, IndexError, RuntimeError ... by what it hit
        return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    return None


STEP_COUNTER = "model/steps_trained/.ATTRIBUTES/VARIABLE_VALUE"


def restore(checkpoint, path):
    """Restores checkpoint `path` into `checkpoint`, every object of it matched (AssertionError if not).

    A checkpoint of the zoo from before the model counted its own steps (2026-11-24) matches in
    all but that counter, which then starts from the optimisers' `iterations`: the step then,
    exact unless mixed_float16's loss scaler skipped steps.
    """
    status = checkpoint.restore(path)
    counted = STEP_COUNTER in dict(tf.train.list_variables(path))
    if counted or not _all_but_the_counter(checkpoint, path):
        status.assert_existing_objects_matched()
    status.expect_partial()  # values `checkpoint` does not hold (export's: the run's progress and noise)
    if not counted:
        model = checkpoint.model
        model.steps_trained.assign(max(int(getattr(model, name).iterations.numpy()) for name in model.optimizer_names))


def _all_but_the_counter(checkpoint, path):
    """Whether `path` holds every value `checkpoint` would write, except the step counter."""
    with tempfile.TemporaryDirectory() as scratch:
        written = checkpoint.write(os.path.join(scratch, "layout"))
        expected = {name for name, _ in tf.train.list_variables(written)} - {STEP_COUNTER}
    return expected <= {name for name, _ in tf.train.list_variables(path)}


def loss_scaled(path):
    """Whether checkpoint `path` holds loss-scaled optimisers (a mixed_float16 run's)."""
    return any("/dynamic_scale/" in name for name, _ in tf.train.list_variables(path))


def _layout_error(checkpoint, path, error):
    """The one line that says why checkpoint `path` does not fit this model."""
    names = [name for name, _ in tf.train.list_variables(path)]
    missing = sorted(set(PARTS) - {name.split("/")[0] for name in names})
    if missing:
        return (f"{path} was written by an older version of the zoo (it has no {', '.join(missing)}): "
                f"train afresh in another --workdir")
    scaled_there = loss_scaled(path)
    scaled_here = any(isinstance(getattr(checkpoint.model, name), keras.optimizers.LossScaleOptimizer)
                      for name in checkpoint.model.optimizer_names)
    if scaled_there != scaled_here:
        there, here = ("mixed_float16", "float32 or mixed_bfloat16") if scaled_there else \
            ("float32 or mixed_bfloat16", "mixed_float16")
        return (f"{path} was trained with --precision={there} (its optimisers {'' if scaled_there else 'un'}"
                f"scaled), this run uses {here}: pass --precision={there.split()[0]} to resume it")
    first_line = (str(error).splitlines() or [""])[0][:200]
    return f"{path} does not match this model ({first_line}): train afresh in another --workdir"


def newest_readable(directory):
    """(the newest checkpoint listed in `directory` that reads whole, or None if none is listed;
    the newer ones that are damaged, each named in a warning). All damaged: DamagedCheckpoint."""
    state = tf.train.get_checkpoint_state(directory)
    candidates = [os.path.join(directory, path) for path in reversed(state.all_model_checkpoint_paths)] \
        if state else []  # newest first; join keeps absolute paths as they are
    damaged = []
    for path in candidates:
        problem = damage(path)
        if not problem:
            return path, damaged
        files = sorted(glob.glob(f"{path}.*")) or [f"{path}.index"]
        logging.warning("Checkpoint %s is damaged (%s: %s); trying the one before", path,
                        ", ".join(map(os.path.basename, files)), problem)
        damaged.append(path)
    if damaged:
        raise DamagedCheckpoint(f"every checkpoint in {directory} is damaged "
                                f"({', '.join(map(os.path.basename, damaged))}): train afresh in another --workdir")
    return None, []


def restore_latest_good(checkpoint, directory, repair=True):
    """Restores the newest readable checkpoint in `directory` and returns its path (None: none yet).

    A damaged one is named in a warning and, when `repair`, moved to `damaged/` and dropped from
    the checkpoint list (a CheckpointManager made afterwards never counts it). None readable, or
    a checkpoint of another layout (older zoo, other precision), is a DamagedCheckpoint error.
    """
    path, damaged = newest_readable(directory)
    if path is None:
        return None
    try:
        restore(checkpoint, path)
    except (AssertionError, tf.errors.OpError) as error:  # objects unmatched, or other dtypes
        raise DamagedCheckpoint(_layout_error(checkpoint, path, error)) from None
    if damaged and repair:
        _set_aside(damaged, directory)
    return path


def _set_aside(damaged, directory):
    quarantine = os.path.join(directory, "damaged")
    os.makedirs(quarantine, exist_ok=True)
    for path in damaged:
        for name in glob.glob(f"{path}.*"):
            shutil.move(name, os.path.join(quarantine, os.path.basename(name)))
    state = tf.train.get_checkpoint_state(directory)
    listed = [os.path.join(directory, path) for path in state.all_model_checkpoint_paths]  # oldest first
    good = [path for path in listed if path not in damaged]
    tf.compat.v1.train.update_checkpoint_state(directory, good[-1], all_model_checkpoint_paths=good)
