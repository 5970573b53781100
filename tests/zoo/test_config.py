import dataclasses

import pytest

import zoo
from zoo.config import parse_interval
from zoo.errors import UsageError


def test_defaults_train_the_dcgan_on_the_built_in_dataset():
    config = zoo.Config()
    assert (config.model, config.dataset) == ("dcgan", "shapes")
    assert (config.learning_rate, config.beta_1) == (2e-4, 0.5)
    assert config.workdir == "runs/dcgan_shapes"


def test_default_workdir_is_a_safe_folder_name_for_folder_datasets():
    assert zoo.Config(dataset="folder:/data/my faces").workdir == "runs/dcgan_folder_data_my_faces"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        zoo.Config().epochs = 3


def test_json_round_trip():
    config = zoo.Config(epochs=3, xla=True, manual_dir="/data")
    assert zoo.Config.from_json(config.to_json()) == config


def test_json_with_unknown_keys_is_refused():
    with pytest.raises(UsageError, match="unknown config keys"):
        zoo.Config.from_json('{"epochz": 3}')


@pytest.mark.parametrize("field, value, message", [
    ("image_size", 48, "image_size must be 32 or 64"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("steps_per_epoch", -1, "steps_per_epoch must be >= 0"),
    ("learning_rate", 0.0, "learning_rate must be positive"),
    ("beta_1", 1.0, r"beta_1 must be in \[0, 1\)"),
])
def test_bad_values_fail_with_a_message_naming_the_field(field, value, message):
    with pytest.raises(UsageError, match=message):
        zoo.Config(**{field: value})


@pytest.mark.parametrize("text, interval", [("500", (500, None)), ("90s", (None, 90)), ("5m", (None, 300)),
                                            ("1h", (None, 3600))])
def test_checkpoint_every_is_steps_or_a_duration(text, interval):
    assert parse_interval(text) == interval


@pytest.mark.parametrize("text", ["0", "5 minutes", "-3", "1.5h", ""])
def test_a_bad_checkpoint_interval_is_one_line_naming_the_forms(text):
    with pytest.raises(UsageError, match=r"checkpoint_every must be a positive number of steps \(500\) or a "
                                         r"duration \(90s, 5m, 1h\), got"):
        zoo.Config(checkpoint_every=text)
