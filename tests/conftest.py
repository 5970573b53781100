"""Shared fixtures: tiny configurations that exercise the real code paths in seconds."""
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

import zoo
from zoo import features
from zoo.datasets import get_source

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_config(workdir, **overrides):
    """A run small enough for a test: 32x32 images, narrow networks, two steps an epoch, each step its own
    execution (so callbacks see every step, as the tests of step counts expect)."""
    values = dict(workdir=str(workdir), image_size=32, batch_size=8, epochs=1, steps_per_epoch=2,
                  latent_dim=8, base_filters=8, num_samples=4, precision="float32", xla=False,
                  steps_per_execution=1)
    return zoo.Config(**{**values, **overrides})


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited: what a process killed while writing leaves in its names."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture(scope="session")
def tiny_config():
    return make_tiny_config


@pytest.fixture
def mock_tfds():
    """tfds's own mock: real builders and feature specs, generated examples, no download."""
    with tfds.testing.mock_data(num_examples=32):
        yield


def _run_script(*args, timeout=600):
    """Runs a repo script (or `-c` code) as a user would; returns the completed process."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.fixture(scope="session")
def run_script():
    return _run_script


# Briefly trained runs and their exports, shared by the export and generate tests.

@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory):
    """model name -> the work directory of a tiny run on mock shapes (the DCGAN's with two epochs)."""
    runs = {}
    with tfds.testing.mock_data(num_examples=16):
        for name in ("dcgan", "cgan", "vae"):
            config = make_tiny_config(tmp_path_factory.mktemp(name), model=name, epochs=2 if name == "dcgan" else 1)
            zoo.train(config)
            runs[name] = config.workdir
    return runs


@pytest.fixture(scope="session")
def serving_batch_max():
    """The test exports' bound on a request's images: small, so exceeding it is cheap."""
    return 16


@pytest.fixture(scope="session")
def exported_runs(trained_runs, serving_batch_max, tmp_path_factory):
    """(export_dir, model name -> its version 1 folder): every trained run exported into one folder."""
    from zoo import export

    export_dir = str(tmp_path_factory.mktemp("exports"))
    return export_dir, {name: export.export(export.load_trained(workdir), export_dir, name, serving_batch_max)
                        for name, workdir in trained_runs.items()}


# A domain feature network for shapes (the classifier of the class-accuracy score), trained briefly once per
# session into a temporary cache: shared by the scoring tests and the cGAN's.

SHORT_TRAINING = 200  # steps of the domain network: seconds, and well above chance on shapes


def train_shapes_features(cache_dir):
    """The shapes domain network, trained SHORT_TRAINING steps into `cache_dir` (or loaded from it)."""
    config = zoo.Config(dataset="shapes", cache_dir=str(cache_dir), batch_size=128)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "DOMAIN_TRAIN_STEPS", SHORT_TRAINING)
        return features.get(config, get_source(config))


@pytest.fixture(scope="session")
def shapes_features():
    """train_shapes_features itself."""
    return train_shapes_features


@pytest.fixture(scope="session")
def shapes_feature_cache(tmp_path_factory):
    """A cache dir holding the shapes domain network at 32px, seed 0; pass it as cache_dir."""
    cache_dir = tmp_path_factory.mktemp("feature_cache")
    train_shapes_features(cache_dir)
    return str(cache_dir)
