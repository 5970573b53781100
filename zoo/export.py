"""Trained models -> versioned SavedModels with named signatures, for TF Serving.

Loading an export needs TensorFlow only: the signatures are traced graphs of
TensorFlow ops, with no Keras or project code behind them. Beside them an export
carries what a client or a server needs and cannot guess: the class names (the
`classes` signature), the latent and image sizes and the training config
(assets.extra/), and warm-up requests TF Serving replays before serving a version;
`<export_dir>/models.config` lists every model for TF Serving.
"""
import dataclasses
import errno
import gc
import json
import os
import posixpath
import re
import shutil
import tempfile
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from zoo import checkpoints, device, training
from zoo.config import Config
from zoo.datasets import get_source
from zoo.datasets.pipelines import read_dataset_facts
from zoo.errors import UsageError
from zoo.files import partial_prefix, remove_leftovers, write_text

# The largest batch a request may ask for (rows of z, labels, images; num_images), by default.
# A server answers a request in one piece: this bounds the memory one request can take.
SERVING_BATCH_MAX = 1024
COUNT_INPUT = "num_images"  # the scalar input that says how many images a signature makes
SERVING_CONFIG = "models.config"
WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving's name, in assets.extra/


class Trained(NamedTuple):
    """What an export or a generator needs of a run: its config, its model and, if it takes labels,
    the name of each label (its index's digits when the dataset names none)."""
    config: Config
    model: keras.Model
    class_names: tuple


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
        checkpoints.restore(tf.train.Checkpoint(model=model), checkpoint_path)
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


def load_trained(workdir, checkpoint="latest"):
    """The model of a work directory, restored from its latest checkpoint or (checkpoint="best") the one
    with the lowest FID during training, in float32.

    Needs the run directory only, not the training data: the dataset's facts
    the model is built from (channels, classes) were saved with the run.
    """
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{workdir} is not a run directory (no config.json): pass the --workdir "
                         f"that train.py wrote")
    config = Config.read(config_path)
    folder = os.path.join(workdir, "checkpoints", *(["best"] if checkpoint == "best" else []))
    latest, _ = checkpoints.newest_readable(folder)  # a damaged newest one: the one before, with a warning
    if latest is None:
        raise UsageError(f"{workdir} has no best checkpoint: it is kept by training with --eval_every" if
                         checkpoint == "best" else f"{workdir} has no checkpoint yet: train at least one epoch first")
    source = read_dataset_facts(workdir) or get_source(config)  # runs from before the facts were saved
    # Computed in float32; the optimisers laid out as the run's (loss-scaled for mixed_float16), so they restore.
    policy = dataclasses.replace(device.resolve(precision="float32", xla=False, strategy="default"),
                                 loss_scaling=checkpoints.loss_scaled(latest))
    model = training.build_model(config.replace(workdir=workdir), source, policy)
    restore_weights(model, latest, config)
    if not model.needs_labels:
        return Trained(config, model, ())
    return Trained(config, model, tuple(source.class_names) or tuple(str(label) for label in range(model.num_classes)))


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


def bounded(function, signature, batch_max):
    """`function` behind checks, traced with it, that no input asks for more than `batch_max` images.

    Every input's batch dimension (rows of z, labels, images) and the `num_images` count are
    checked; a request above the bound fails with InvalidArgumentError naming the input and bound.
    """
    def checked(*inputs):
        checks = []
        for spec, tensor in zip(signature, inputs):
            if spec.shape.rank and spec.shape[0] is None:
                checks.append(tf.debugging.assert_less_equal(
                    tf.shape(tensor)[0], batch_max,
                    message=f"{spec.name} may have at most {batch_max} rows (the serving_batch_max of this export)"))
            elif spec.name == COUNT_INPUT:
                message = f"{COUNT_INPUT} must be in [0, {batch_max}] (the serving_batch_max of this export)"
                checks += [tf.debugging.assert_non_negative(tensor, message=message),
                           tf.debugging.assert_less_equal(tensor, tf.cast(batch_max, tensor.dtype), message=message)]
        with tf.control_dependencies(checks):
            return function(*[tf.identity(tensor) for tensor in inputs])

    return checked


def class_name_endpoints(class_names, sample):
    """The cGAN's `classes` (names, index = label) and `sample_by_name` (class-name strings, seed)."""
    names = tf.constant(class_names)
    known = f"class_names must be among the classes of this model: {', '.join(class_names)}; unknown:"

    def classes():
        return {"class_names": tf.identity(names)}

    def sample_by_name(requested, seed):
        matches = tf.equal(requested[:, None], names[None, :])
        is_known = tf.reduce_any(matches, axis=1)
        check = tf.debugging.Assert(tf.reduce_all(is_known), [known, tf.boolean_mask(requested, ~is_known)])
        with tf.control_dependencies([check]):
            labels = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
        return sample(labels, seed)

    return {"classes": (classes, []),
            "sample_by_name": (sample_by_name, [tf.TensorSpec([None], tf.string, name="class_names"),
                                                tf.TensorSpec([], tf.int64, name="seed")])}


def endpoints(trained, batch_max=SERVING_BATCH_MAX):
    """name -> (function, input signature): the model's serving endpoints, bounded, and its class names."""
    model_endpoints = dict(trained.model.serving_endpoints())
    if trained.class_names:
        model_endpoints.update(class_name_endpoints(trained.class_names, model_endpoints["sample"][0]))
    return {name: (bounded(with_shape_checks(function, signature), signature, batch_max), signature)
            for name, (function, signature) in model_endpoints.items()}


def description(trained, batch_max, signatures):
    """assets.extra/model.json: the sizes and names a client needs before its first request."""
    model = trained.model
    return {"model": trained.config.model, "latent_dim": model.latent_dim, "image_size": model.image_size,
            "channels": model.channels, "class_names": list(trained.class_names), "serving_batch_max": batch_max,
            "signatures": {name: [spec.name for spec in signature] for name, (_, signature) in signatures.items()}}


def example_input(spec, class_names):
    """A small valid value for an input: one row of zeros (or the first class name), one image."""
    if spec.name == COUNT_INPUT:
        return np.array(1, spec.dtype.as_numpy_dtype)
    shape = [1 if size is None else size for size in spec.shape]
    if spec.dtype == tf.string:
        return np.full(shape, class_names[0].encode(), dtype=object)
    return np.zeros(shape, spec.dtype.as_numpy_dtype)


def serving_protos():
    """tensorflow-serving-api's protos, imported by the serving code only (never at zoo import)."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        raise UsageError("exports write TF Serving's models.config and warm-up requests with tensorflow-serving-api: "
                         "pip install --no-deps tensorflow-serving-api==2.21.0 (--no-deps: it would pull the full "
                         "tensorflow wheel beside tensorflow-cpu)") from None
    return predict_pb2, prediction_log_pb2, model_server_config_pb2


def warmup_records(name, signatures, class_names):
    """Serialized PredictionLogs, one small request per signature, for TF Serving's warm-up."""
    predict_pb2, prediction_log_pb2, _ = serving_protos()

    records = []
    for signature_name, (_, signature) in sorted(signatures.items()):
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = name, signature_name
        for spec in signature:
            request.inputs[spec.name].CopyFrom(tf.make_tensor_proto(example_input(spec, class_names)))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def write_serving_config(export_dir, serving_root):
    """`<export_dir>/models.config`: every model with a version under export_dir, for TF Serving.

    `serving_root` is where the server sees export_dir (the README's docker command mounts it
    at /models). The text is parsed back as a ModelServerConfig before it replaces the old one.
    """
    from google.protobuf import text_format

    *_, model_server_config_pb2 = serving_protos()

    def has_version(name):
        folder = os.path.join(export_dir, name)
        return os.path.isdir(folder) and any(re.fullmatch(r"\d+", entry) for entry in os.listdir(folder))

    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(filter(has_version, os.listdir(export_dir))):
        config.model_config_list.config.add(name=name, base_path=posixpath.join(serving_root, name),
                                            model_platform="tensorflow")
    text = text_format.MessageToString(config)
    text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    path = os.path.join(export_dir, SERVING_CONFIG)
    write_text(path, text)
    return path


def export(trained, export_dir, name, batch_max=SERVING_BATCH_MAX, serving_root="/models"):
    """Writes `<export_dir>/<name>/<version>/`, updates models.config, returns the version's path.

    Never overwrites: the version is written aside, with its assets and warm-up requests, and
    renamed onto the next free version number (see claim_version).
    """
    if batch_max < 1:
        raise UsageError(f"serving_batch_max must be a positive integer, got {batch_max}")
    model_dir = os.path.join(export_dir, check_name(name))
    os.makedirs(model_dir, exist_ok=True)
    remove_leftovers(model_dir)  # versions an export killed midway left unfinished
    staging = tempfile.mkdtemp(prefix=partial_prefix(), dir=model_dir)  # TF Serving ignores non-integer names
    try:
        signatures = endpoints(trained, batch_max)
        archive = keras.export.ExportArchive()
        for layer in serving_layers(trained.model, signatures):
            archive.track(layer)
        for endpoint, (function, signature) in signatures.items():
            archive.add_endpoint(endpoint, function, input_signature=signature)
        archive.write_out(staging, verbose=False)
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, "config.json"), "w") as f:
            f.write(trained.config.to_json())
        with open(os.path.join(extra, "model.json"), "w") as f:
            json.dump(description(trained, batch_max, signatures), f, indent=2)
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
            for record in warmup_records(name, signatures, trained.class_names):
                writer.write(record)
        if not os.path.isfile(os.path.join(staging, "saved_model.pb")):  # removed under us: publish nothing
            raise UsageError(f"{staging} lost its SavedModel while being written; is another process cleaning "
                             f"{model_dir}? Export again")
        final = claim_version(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # there only if the export failed
    write_serving_config(export_dir, serving_root)
    return final
