"""The real training loop, once per registered model, on tfds's mock data."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

import zoo
from zoo.errors import RunMismatchError


@pytest.fixture(scope="module", params=zoo.MODELS.names())
def resumed_run(request, tmp_path_factory, tiny_config):
    """One epoch, then the same command with --epochs=2: the second run must resume."""
    config = tiny_config(tmp_path_factory.mktemp(request.param), model=request.param)
    with tfds.testing.mock_data(num_examples=32):
        zoo.train(config)
        model = zoo.train(config.replace(epochs=2))
    return config, model


def _records(config):
    """The per-epoch training records (evaluations may add lines of their own)."""
    with open(os.path.join(config.workdir, "metrics.jsonl")) as f:
        return [record for record in map(json.loads, f) if "seconds" in record]


def test_resume_continues_the_epoch_and_step_counts(resumed_run):
    config, model = resumed_run
    records = _records(config)
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [2, 4]
    assert int(model.step) == 4


def test_run_directory_holds_flags_checkpoints_samples_and_logs(resumed_run):
    config, _ = resumed_run
    files = set(os.listdir(config.workdir))
    assert {"config.json", "checkpoints", "samples", "tensorboard", "metrics.jsonl", "model.keras"} <= files
    with open(os.path.join(config.workdir, "config.json")) as f:
        assert zoo.Config.from_json(f.read()) == config.replace(epochs=2)
    assert sorted(os.listdir(os.path.join(config.workdir, "samples"))) == ["epoch_0001.png", "epoch_0002.png"]
    assert any(name.startswith("events.out.tfevents") for _, _, names in
               os.walk(os.path.join(config.workdir, "tensorboard")) for name in names)
    assert all(np.isfinite(r[k]) for r in _records(config) for k in r)


def test_saved_model_file_loads_with_keras(resumed_run):
    config, model = resumed_run
    loaded = keras.saving.load_model(os.path.join(config.workdir, "model.keras"), compile=False)
    assert type(loaded) is type(model)
    for saved, trained in zip(loaded.weights, model.weights):
        np.testing.assert_allclose(saved.numpy(), trained.numpy())


def test_resuming_with_other_settings_is_refused(resumed_run):
    config, _ = resumed_run
    with pytest.raises(RunMismatchError, match=r"seed=0 there, 1 now"):
        zoo.train(config.replace(seed=1))
