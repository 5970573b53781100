"""Trained models -> versioned SavedModels with named signatures, for TF Serving.

Loading an export needs TensorFlow only: the signatures are traced graphs of
TensorFlow ops, with no Keras or project code behind them.
"""
import errno
import gc
import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from zoo import device, training
from zoo.config import Config
from zoo.datasets import get_source
from zoo.datasets.pipelines import read_dataset_facts
from zoo.errors import UsageError

# A model name TF Serving takes and that stays one folder: no separators, no '..', not hidden.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_CLAIM_ATTEMPTS = 1000  # versions tried before giving up; only a folder filling faster than we list it exhausts it


def check_name(name):
    """`name` if it is a plain model name: one path component TF Serving accepts."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UsageError(f"model name {name!r} is not allowed: use 1 to 128 letters, digits, '_', '-' or '.', "
                         f"starting with a letter or digit, without '..'")
    return name


def next_version(model_dir):
    """TF Serving's layout: integer version folders, the next one after the largest."""
    versions = [int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name)] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def claim_version(staging, model_dir):
    """Renames the complete export `staging` to the next free version folder and returns its path.

    The rename is atomic and fails when the version is taken (by an export
    running at the same time): then the next number is tried. So a watching
    server never sees half an export, and no export replaces another.
    """
    for _ in range(_CLAIM_ATTEMPTS):
        final = os.path.join(model_dir, str(next_version(model_dir)))
        try:
            os.rename(staging, final)  # onto a non-empty folder: ENOTEMPTY/EEXIST; onto a file: ENOTDIR
            return final
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
    raise UsageError(f"{model_dir}: no free version after {_CLAIM_ATTEMPTS} attempts; is something else "
                     f"writing versions there?")


def restore_weights(model, checkpoint_path, config):
    """Restores `model` from `checkpoint_path`, checking every object of the model was in it.

    A checkpoint whose names do not match (another model, another version of the
    code) would otherwise leave freshly initialised weights to be exported.
    """
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint_path)
        status.assert_existing_objects_matched()
        status.expect_partial()  # the checkpoint's counters and noise state are not exported
        return
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
    _forget_partial_restores()
    raise UsageError(f"{checkpoint_path} does not hold the weights of the {config.model} that config.json "
                     f"describes ({reason}); export a run directory as train.py left it")


def _forget_partial_restores():
    """Silences the restore that just failed: TensorFlow would list its unmatched values at exit, after the
    one-line error. A restore that raised returned no status to call expect_partial() on."""
    for leftover in gc.get_objects():
        if type(leftover).__name__ == "_CheckpointRestoreCoordinatorDeleter":
            leftover.set_expect_partial(True)


def load_trained(workdir):
    """The model of a work directory, restored from its last checkpoint, in float32.

    Needs the run directory only, not the training data: the dataset's facts
    the model is built from (channels, classes) were saved with the run.
    """
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{workdir} is not a run directory (no config.json): pass the --workdir "
                         f"that train.py wrote")
    config = Config.read(config_path)
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest is None:
        raise UsageError(f"{workdir} has no checkpoint yet: train at least one epoch first")
    source = read_dataset_facts(workdir) or get_source(config)  # runs from before the facts were saved
    policy = device.resolve(precision="float32", xla=False, strategy="default")
    model = training.build_model(config.replace(workdir=workdir), source, policy)
    restore_weights(model, latest, config)
    return config, model


def serving_layers(model, endpoints):
    """The model's networks the signatures use: only their weights go into the export.

    Traced once here to see which variables they read; tracking the whole model
    would ship the discriminator (and optimiser state) to every server.
    """
    used = {id(variable) for function, signature in endpoints.values()
            for variable in tf.function(function).get_concrete_function(*signature).variables}
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=False)
              if any(id(weight.value) in used for weight in layer.weights)]
    covered = {id(weight.value) for layer in layers for weight in layer.weights}
    if used - covered:
        raise RuntimeError(f"{type(model).__name__}'s signatures read {len(used - covered)} variables outside "
                           f"its sub-networks; hold them in a keras layer so the export can track them")
    return layers


def with_shape_checks(function, signature):
    """`function` that first checks each input's known sizes against its signature.

    A signature's shape is not enforced when it is called: without this, a z of the
    wrong width fails deep inside with "Matrix size-incompatible".
    """

    def checked(*inputs):
        checks = [tf.debugging.assert_equal(tf.shape(value)[axis], size, message=(
                      f"{spec.name} must have shape [{', '.join('n' if s is None else str(s) for s in spec.shape)}]"))
                  for spec, value in zip(signature, inputs) for axis, size in enumerate(spec.shape) if size is not None]
        with tf.control_dependencies(checks):
            return function(*(tf.identity(value) for value in inputs))

    return checked


def export(model, export_dir, name):
    """Writes `<export_dir>/<name>/<version>/` and returns that path; never overwrites."""
    model_dir = os.path.join(export_dir, check_name(name))
    os.makedirs(model_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=model_dir)  # TF Serving ignores non-integer names
    try:
        endpoints = model.serving_endpoints()
        archive = keras.export.ExportArchive()
        for layer in serving_layers(model, endpoints):
            archive.track(layer)
        for endpoint, (function, signature) in endpoints.items():
            archive.add_endpoint(endpoint, with_shape_checks(function, signature), input_signature=signature)
        archive.write_out(staging, verbose=False)
        return claim_version(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # there only if the export failed
