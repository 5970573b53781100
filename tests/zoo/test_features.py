"""Specification of the feature networks: the domain classifier and both Inception file formats."""
import hashlib
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from keras.src.legacy.saving import legacy_h5_format
from PIL import Image

import zoo
from zoo import features
from zoo.datasets import get_source
from zoo.errors import UsageError

SHAPES_ACCURACY = 0.5  # after conftest.SHORT_TRAINING steps (0.57 measured); 6 classes: chance is 0.17


def _images(count, size=32, channels=3):
    return tf.constant(np.random.default_rng(0).integers(0, 256, (count, size, size, channels)), tf.uint8)


@pytest.fixture(scope="module")
def twice_trained(shapes_feature_cache, shapes_features, tmp_path_factory):
    """The shapes domain network trained from scratch in two caches (the session's and a new one), then
    loaded from the first."""
    trained = [shapes_features(shapes_feature_cache), shapes_features(tmp_path_factory.mktemp("cache"))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "train_domain_network", None)  # loading from the cache must not train
        loaded = shapes_features(shapes_feature_cache)
    return trained, loaded


def test_domain_network_is_deterministic_for_a_seed(twice_trained):
    (first, second), _ = twice_trained
    images = _images(16)
    np.testing.assert_array_equal(first.embed(images)[0], second.embed(images)[0])
    assert first.record["classifier_test_accuracy"] == second.record["classifier_test_accuracy"]


def test_domain_network_classifies_shapes_and_says_how_well(twice_trained):
    (first, _), _ = twice_trained
    assert first.record["classifier_test_accuracy"] >= SHAPES_ACCURACY
    assert first.record["features"] == "domain" and "shapes/" in first.record["feature_network"]
    feature_values, predicted = first.embed(_images(4))
    assert feature_values.shape == (4, features.DOMAIN_FEATURES) and predicted.shape == (4,)


def test_domain_network_is_loaded_from_its_cache(twice_trained):
    (first, _), loaded = twice_trained
    images = _images(8)
    np.testing.assert_array_equal(first.embed(images)[0], loaded.embed(images)[0])
    assert loaded.record == first.record


def test_unlabelled_dataset_points_to_inception(tmp_path):
    os.makedirs(tmp_path / "pics")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "pics" / "a.png")
    config = zoo.Config(dataset=f"folder:{tmp_path / 'pics'}", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(UsageError, match="no labels or attributes .* pass --features=inception"):
        features.get(config, get_source(config))


def _fake_inception_graph(path, width=16):
    """A small random graph with the Inception graph's tensor names: uint8-valued images of any size into
    ExpandDims:0, resized bilinearly to 299x299 and scaled as the real one does, `width` features from pool_3:0."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="ExpandDims")
        resized = tf.compat.v1.image.resize_bilinear(images, [299, 299])
        scaled = tf.multiply(tf.subtract(resized, 128.0), 1 / 128.0, name="Mul")
        kernel = tf.constant(np.random.default_rng(1).normal(size=(13, 13, 3, width)).astype(np.float32))
        activations = tf.nn.relu(tf.nn.conv2d(scaled, kernel, strides=13, padding="VALID"))  # 23x23
        tf.nn.avg_pool2d(activations, ksize=23, strides=1, padding="VALID", name="pool_3")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return str(path)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_inception_graph_file(tmp_path):
    path = _fake_inception_graph(tmp_path / "classify_image_graph_def.pb")
    network = features.get(zoo.Config(features="inception", inception=path), None)
    values, predicted = network.embed(_images(3, channels=1))  # grey images become three equal channels
    assert values.shape == (3, 16) and predicted is None and np.isfinite(values).all()
    assert not np.allclose(values[0], values[1])
    assert network.record == {"features": "inception", "feature_network": "Inception graph pool_3 (TTUR/TF-GAN)",
                              "feature_file": path, "feature_sha256": _sha256(path)}


def test_inception_graph_is_found_in_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    os.makedirs(tmp_path / "models")
    path = _fake_inception_graph(tmp_path / "models" / features.INCEPTION_GRAPH)
    assert features.get(zoo.Config(features="inception"), None).record["feature_file"] == path


def test_keras_inception_weights_file(tmp_path):
    """A randomly initialised InceptionV3 saved as Keras's download is (legacy .h5, no top): the full network,
    a few seconds."""
    path = str(tmp_path / features.INCEPTION_H5)
    random_network = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, random_network)
    network = features.get(zoo.Config(features="inception", inception=path), None)
    values, _ = network.embed(_images(2))
    assert values.shape == (2, 2048) and np.isfinite(values).all() and not np.allclose(values[0], values[1])
    assert network.record["feature_sha256"] == _sha256(path) and "InceptionV3" in network.record["feature_network"]


def test_missing_inception_weights_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UsageError, match=f"no Inception weights: download .*{features.INCEPTION_H5} into "
                                         f"{tmp_path}/models/"):
        features.get(zoo.Config(features="inception"), None)


def test_celeb_a_attributes_train_a_multi_label_network_that_labels_a_cgans_classes(tmp_path, monkeypatch):
    monkeypatch.setattr(features, "DOMAIN_TRAIN_STEPS", 2)
    config = zoo.Config(dataset="celeb_a", cache_dir=str(tmp_path), batch_size=16)
    with tfds.testing.mock_data(num_examples=32):
        network = features.get(config, get_source(config))
        conditioned = config.replace(condition_on="Smiling,Male")
        for_cgan = features.get(conditioned, get_source(conditioned))
    assert 0 <= network.record["classifier_test_accuracy"] <= 1  # the mean over the 40 attributes
    assert network.embed(_images(4))[1] is None  # no labels to predict without --condition_on
    labels = for_cgan.embed(_images(4))[1]
    assert labels.shape == (4,) and set(labels) <= {0, 1, 2, 3}


def test_features_are_float32_whatever_the_training_precision(shapes_feature_cache, shapes_features):
    """Scores during a mixed-precision run must be those `python -m zoo.evaluate` gives in float32."""
    images = _images(8)
    reference = shapes_features(shapes_feature_cache).embed(images)[0]
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        under_mixed = shapes_features(shapes_feature_cache).embed(images)[0]
    finally:
        keras.config.set_dtype_policy("float32")
    assert under_mixed.dtype == np.float32
    np.testing.assert_array_equal(reference, under_mixed)
