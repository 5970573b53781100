"""Trained models -> versioned SavedModels with named signatures, for TF Serving.

Loading an export needs TensorFlow only: the signatures are traced graphs of
TensorFlow ops, with no Keras or project code behind them. Beside them an export
carries what a client or a server needs and cannot guess: the class names (the
`classes` signature), the latent and image sizes and the training config
(assets.extra/), and warm-up requests TF Serving replays before serving a version;
`<export_dir>/models.config` lists every model for TF Serving.
"""
import json
import os
import posixpath
import re
import shutil
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from zoo import device, training
from zoo.config import Config
from zoo.datasets import get_source
from zoo.errors import UsageError

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


def next_version(model_dir):
    """TF Serving's layout: integer version folders, the next one after the largest."""
    versions = [int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name)] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def load_trained(workdir):
    """The model of a work directory, restored from its last checkpoint, in float32."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{workdir} is not a run directory (no config.json): pass the --workdir "
                         f"that train.py wrote")
    with open(config_path) as f:
        config = Config.from_json(f.read())
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest is None:
        raise UsageError(f"{workdir} has no checkpoint yet: train at least one epoch first")
    policy = device.resolve(precision="float32", xla=False, strategy="default")
    source = get_source(config)
    model = training.build_model(config.replace(workdir=workdir), source, policy)
    checkpoint, _, _ = training.checkpointer(model, os.path.join(workdir, "checkpoints"))
    checkpoint.restore(latest).expect_partial()
    if not model.needs_labels:
        return Trained(config, model, ())
    return Trained(config, model, tuple(source.class_names) or tuple(str(label) for label in range(model.num_classes)))


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
    return {name: (bounded(function, signature, batch_max), signature)
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


def write_atomically(path, text):
    """Writes aside and renames: a reader sees the old file or the new, never half of one."""
    staging = f"{path}.tmp-{os.getpid()}"
    with open(staging, "w") as f:
        f.write(text)
    os.replace(staging, path)


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
    write_atomically(path, text)
    return path


def export(trained, export_dir, name, batch_max=SERVING_BATCH_MAX, serving_root="/models"):
    """Writes `<export_dir>/<name>/<version>/`, updates models.config, returns the version's path.

    Never overwrites: the version is written aside, with its assets and warm-up requests, and
    renamed into place.
    """
    if batch_max < 1:
        raise UsageError(f"serving_batch_max must be a positive integer, got {batch_max}")
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    version = next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    staging = os.path.join(model_dir, f".staging-{version}")  # TF Serving ignores non-integer names
    shutil.rmtree(staging, ignore_errors=True)
    signatures = endpoints(trained, batch_max)
    archive = keras.export.ExportArchive()
    archive.track(trained.model)
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
    os.rename(staging, final)  # atomic: a watching server never sees a half-written version
    write_serving_config(export_dir, serving_root)
    return final
