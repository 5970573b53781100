"""Feature networks: what FID, KID and precision/recall measure distances in.

Every network takes uint8 images [B, S, S, C] (real ones as the dataset stores them,
generated ones as the `sample` signature's `images_uint8`) and gives features [B, D],
and when it is a classifier its predicted labels. Each carries a `record`: which network
and which file produced the numbers, for scores are comparable only between equal records.

- `domain`: a small CNN the zoo trains on the dataset's own train split (class labels, or
  celeb_a's 40 attributes), deterministic for a seed and cached per dataset version and
  image size. It works offline for every labelled dataset; its numbers compare only with
  other numbers from the same network (same record).
- `inception`: the FID reference network, from the TTUR/TF-GAN graph file or Keras's
  InceptionV3 ImageNet weights. With the graph file and 50000 samples, FIDs compare with papers.
"""
import dataclasses
import hashlib
import json
import logging
import os
import re
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.datasets import get_source, make_dataset
from zoo.metrics import every_example
from zoo.errors import UsageError
from zoo.registry import Registry

FEATURES = Registry("feature network")

DOMAIN_TRAIN_STEPS = 500  # ~1 epoch of fashion_mnist, 11 of shapes; about a minute on 2 CPU cores
DOMAIN_VERSION = 1  # of the network and its training, in the cache's file names: a change retrains
DOMAIN_BATCH_SIZE = 128
DOMAIN_FEATURES = 128
INCEPTION_GRAPH = "classify_image_graph_def.pb"  # in http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz
INCEPTION_H5 = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_H5_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/{INCEPTION_H5}"
INCEPTION_SIZE = 299


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
    """`embed(uint8 images)` -> (features float [B, D], predicted labels [B] or None); `record` names it."""

    record: dict
    embed: Callable


def get(config, source):
    """The feature network `config.features` names, for `source`'s images at config.image_size.

    Built in float32 whatever the training's mixed-precision policy: scores during training must be
    those `python -m zoo.evaluate` gives, and the cached network the same whichever process made it.
    """
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return FEATURES.get(config.features)(config, source)
    finally:
        keras.config.set_dtype_policy(policy)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_unit_range(images):
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _three_channels(images):
    return tf.tile(images, [1, 1, 1, 3]) if images.shape[-1] == 1 else images


# domain

@FEATURES.register("domain")
def domain(config, source):
    """The dataset's own classifier: trained on first use, then loaded from its cache."""
    raw = get_source(config.replace(condition_on=""))  # trained on the dataset's own labels, whatever a cGAN groups
    if raw.num_classes:
        labelled, multi_label = raw, False
    elif raw.attributes:
        labelled, multi_label = _labelled_by_all_attributes(raw), True
    else:
        raise UsageError(f"dataset {raw.name!r} has no labels or attributes to train the domain feature network "
                         f"on: pass --features=inception (see --inception)")
    builder = raw.prepare()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", builder.info.full_name)
    root = config.cache_dir or os.path.join(config.data_dir or tfds.core.constants.DATA_DIR, "zoo_features")
    stem = os.path.join(root, f"{slug}_{config.image_size}px_seed{config.seed}_v{DOMAIN_VERSION}")
    keras.utils.set_random_seed(config.seed)  # the initial weights
    model = build_domain_network(config.image_size, raw.channels,
                                 len(raw.attributes) if multi_label else raw.num_classes)
    if os.path.isfile(stem + ".json"):  # written last: its presence means the weights are whole
        model.load_weights(stem + ".weights.h5")
        with open(stem + ".json") as f:
            accuracy = json.load(f)["test_accuracy"]
    else:
        accuracy = train_domain_network(model, labelled, config, multi_label)
        _save_aside(stem, model, {"dataset": builder.info.full_name, "image_size": config.image_size,
                                  "seed": config.seed, "train_steps": DOMAIN_TRAIN_STEPS,
                                  "test_split": raw.test_split, "test_accuracy": accuracy})
    logging.info("Domain feature network %s.weights.h5: test accuracy %.4f", stem, accuracy)
    predict = _attribute_label(config.condition_on, raw.attributes) if multi_label else \
        (lambda logits: tf.argmax(logits, axis=-1, output_type=tf.int32))
    classify = tf.function(lambda images: model(to_unit_range(images), training=False), reduce_retracing=True)

    def embed(images):
        features, logits = classify(images)
        return features.numpy(), (None if predict is None else predict(logits).numpy())

    return FeatureNetwork({"features": "domain", "feature_network": f"zoo domain CNN on {builder.info.full_name} "
                           f"{raw.train_split} split, {config.image_size}px, seed {config.seed}",
                           "feature_file": stem + ".weights.h5", "feature_sha256": sha256(stem + ".weights.h5"),
                           "classifier_test_accuracy": accuracy}, embed)


def build_domain_network(image_size, channels, outputs):
    """images in [-1, 1] -> (features [B, 128] in [-1, 1], logits [B, outputs]).

    Three stride-2 convolutions, flattened (positions matter to FID, not only classes), one tanh layer:
    bounded features keep KID's cubic kernel (x.y / 128 + 1)^3 on the scale it was made for. Dropout
    after the features: a classifier that memorises its train split would set train images apart
    from test images and raise the real-data floor.
    """
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for width in (32, 64, 128):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    features = keras.layers.Dense(DOMAIN_FEATURES, activation="tanh", name="features")(keras.layers.Flatten()(x))
    logits = keras.layers.Dense(outputs, name="logits")(keras.layers.Dropout(0.3, seed=0)(features))
    return keras.Model(images, [features, logits], name="domain_features")


def train_domain_network(model, source, config, multi_label):
    """Trains `model` on the train split's labels; returns its accuracy on the test split
    (for attributes, the mean over attributes). Weights and shuffling follow config.seed."""
    dataset, _ = make_dataset(source, config, source.train_split, batch_size=DOMAIN_BATCH_SIZE, training=True,
                              with_labels=True)
    classifier = keras.Model(model.inputs, model.outputs[1])
    classifier.compile(keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True)
                       if multi_label else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logging.info("Training the domain feature network on %s (%d steps of %d)", source.name, DOMAIN_TRAIN_STEPS,
                 DOMAIN_BATCH_SIZE)
    classifier.fit(dataset.map(lambda batch: (batch["images"], tf.cast(batch["labels"], tf.float32)
                                              if multi_label else batch["labels"])),
                   epochs=1, steps_per_epoch=DOMAIN_TRAIN_STEPS, shuffle=False, verbose=0)  # the pipeline shuffles
    test, _ = every_example(source, config.replace(batch_size=DOMAIN_BATCH_SIZE), source.test_split,
                            with_labels=True)
    correct = []
    for batch in test:
        logits = classifier(batch["images"], training=False)
        predicted = tf.cast(logits > 0, tf.int32) if multi_label else tf.argmax(logits, -1, output_type=tf.int32)
        correct.append(np.reshape(predicted.numpy() == batch["labels"].numpy(), [-1]))
    return float(np.mean(np.concatenate(correct)))


def _labelled_by_all_attributes(source):
    """celeb_a with its 40 attribute bits [40] as the label of each image, to train on."""
    names = source.attributes

    def bits(example):
        return tf.stack([tf.cast(example["attributes"][name], tf.int32) for name in names])

    return dataclasses.replace(source, num_classes=len(names), label_fn=bits)


def _attribute_label(condition_on, attributes):
    """Attribute logits -> the cGAN's label (sum of bit_i * 2^i over the --condition_on attributes); None
    without --condition_on: an unconditional model has no labels to check."""
    if not condition_on:
        return None
    indices = [attributes.index(name.strip()) for name in condition_on.split(",")]

    def label(logits):
        bits = tf.cast(tf.gather(logits, indices, axis=-1) > 0, tf.int32)
        return tf.reduce_sum(bits * 2 ** tf.range(len(indices)), axis=-1)

    return label


def _save_aside(stem, model, info):
    """Weights, then their description, each written aside and renamed: a killed run leaves no half cache."""
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    partial = f"{stem}.partial-{os.getpid()}"
    model.save_weights(partial + ".weights.h5")
    os.replace(partial + ".weights.h5", stem + ".weights.h5")
    with open(partial + ".json", "w") as f:
        json.dump(info, f, indent=2)
    os.replace(partial + ".json", stem + ".json")


# inception

@FEATURES.register("inception")
def inception(config, source):
    """InceptionV3's 2048-d pool features, from --inception=PATH or the Keras cache."""
    path = config.inception or _in_keras_cache()
    if not path:
        raise UsageError(f"no Inception weights: download {INCEPTION_H5_URL} into {_keras_cache()}/ (or pass "
                         f"--inception=PATH to it, or to the TTUR/TF-GAN graph {INCEPTION_GRAPH})")
    if not os.path.isfile(path):
        raise UsageError(f"--inception={path}: no such file; expected {INCEPTION_GRAPH} or {INCEPTION_H5}")
    if path.endswith(".pb"):
        network, embed = "Inception graph pool_3 (TTUR/TF-GAN)", _graph_embedding(path)
    elif path.endswith(".h5"):
        network, embed = "Keras InceptionV3 ImageNet, include_top=False, average pool", _keras_embedding(path)
    else:
        raise UsageError(f"--inception={path}: expected a .pb graph ({INCEPTION_GRAPH}) or Keras .h5 weights "
                         f"({INCEPTION_H5})")
    logging.info("Inception features: %s from %s", network, path)
    return FeatureNetwork({"features": "inception", "feature_network": network, "feature_file": path,
                           "feature_sha256": sha256(path)}, lambda images: (embed(images).numpy(), None))


def _keras_cache():
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def _in_keras_cache():
    found = [os.path.join(_keras_cache(), name) for name in (INCEPTION_GRAPH, INCEPTION_H5)]
    return next((path for path in found if os.path.isfile(path)), None)


def _graph_embedding(path):
    """The graph's own preprocessing, as the papers ran it: uint8-valued images of any size into
    `ExpandDims:0`, which the graph resizes bilinearly to 299x299 and scales; `pool_3:0` out."""
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())

    def pool_3(images):
        return tf.compat.v1.import_graph_def(graph_def, input_map={"ExpandDims:0": images},
                                             return_elements=["pool_3:0"], name="inception")[0]

    try:
        function = tf.compat.v1.wrap_function(pool_3, [tf.TensorSpec([None, None, None, 3], tf.float32)])
    except ValueError as error:
        raise UsageError(f"--inception={path} is not the Inception graph ({str(error).splitlines()[0]})") from None
    return lambda images: tf.reshape(function(tf.cast(_three_channels(images), tf.float32)),
                                     [tf.shape(images)[0], -1])


def _keras_embedding(path):
    """Keras's InceptionV3 without its top, average-pooled; images resized bilinearly to 299x299, in [-1, 1]."""
    model = keras.applications.InceptionV3(include_top=False, weights=path, pooling="avg",
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    return tf.function(lambda images: model(tf.image.resize(to_unit_range(_three_channels(images)),
                                                            [INCEPTION_SIZE, INCEPTION_SIZE], method="bilinear"),
                                            training=False))
