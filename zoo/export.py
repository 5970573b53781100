"""Trained models -> versioned SavedModels with named signatures, for TF Serving.

Loading an export needs TensorFlow only: the signatures are traced graphs of
TensorFlow ops, with no Keras or project code behind them.
"""
import os
import re
import shutil

import keras
import tensorflow as tf

from zoo import device, training
from zoo.config import Config
from zoo.datasets import get_source
from zoo.errors import UsageError


def next_version(model_dir):
    """TF Serving's layout: integer version folders, the next one after the largest."""
    versions = [int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name)] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def load_trained(workdir, checkpoint="latest"):
    """The model of a work directory, restored from its latest checkpoint or (checkpoint="best") the one
    with the lowest FID during training, in float32."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{workdir} is not a run directory (no config.json): pass the --workdir "
                         f"that train.py wrote")
    with open(config_path) as f:
        config = Config.from_json(f.read())
    folder = os.path.join(workdir, "checkpoints", *(["best"] if checkpoint == "best" else []))
    latest = tf.train.latest_checkpoint(folder)
    if latest is None:
        raise UsageError(f"{workdir} has no best checkpoint: it is kept by training with --eval_every" if
                         checkpoint == "best" else f"{workdir} has no checkpoint yet: train at least one epoch first")
    policy = device.resolve(precision="float32", xla=False, strategy="default")
    model = training.build_model(config.replace(workdir=workdir), get_source(config), policy)
    checkpoint, _, _ = training.checkpointer(model, os.path.join(workdir, "checkpoints"))
    checkpoint.restore(latest).expect_partial()
    return config, model


def export(model, export_dir, name):
    """Writes `<export_dir>/<name>/<version>/` and returns that path; never overwrites."""
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    version = next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    staging = os.path.join(model_dir, f".staging-{version}")  # TF Serving ignores non-integer names
    shutil.rmtree(staging, ignore_errors=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for endpoint, (function, signature) in model.serving_endpoints().items():
        archive.add_endpoint(endpoint, function, input_signature=signature)
    archive.write_out(staging, verbose=False)
    os.rename(staging, final)  # atomic: a watching server never sees a half-written version
    return final
