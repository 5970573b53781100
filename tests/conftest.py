"""Shared fixtures: tiny configurations that exercise the real code paths in seconds."""
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

import zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_config(workdir, **overrides):
    """A run small enough for a test: 32x32 images, narrow networks, two steps an epoch."""
    values = dict(workdir=str(workdir), image_size=32, batch_size=8, epochs=1, steps_per_epoch=2,
                  latent_dim=8, base_filters=8, num_samples=4, precision="float32", xla=False)
    return zoo.Config(**{**values, **overrides})


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
