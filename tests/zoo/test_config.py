import dataclasses
import json
import re

import pytest

import zoo
from zoo.config import parse_interval
from zoo.errors import UsageError


def test_defaults_train_the_dcgan_on_the_built_in_dataset():
    config = zoo.Config()
    assert (config.model, config.dataset) == ("dcgan", "shapes")
    assert (config.learning_rate, config.beta_1) == (5e-4, 0.5)  # the GANs' measured default; the paper's 2e-4 by flag
    assert config.workdir == "runs/dcgan_shapes"


def test_default_workdir_is_a_safe_folder_name_for_folder_datasets():
    assert zoo.Config(dataset="folder:/data/my faces").workdir == "runs/dcgan_folder_data_my_faces"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        zoo.Config().epochs = 3


def test_json_round_trip():
    config = zoo.Config(epochs=3, xla=True, manual_dir="/data")
    assert zoo.Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("text, message", [
    ('{"epochs": 2', "not valid JSON"),
    ("[1, 2]", "expected a JSON object of settings, got list"),
    ('{"epochs": "20"}', 'epochs must be an integer or null, got "20"'),
    ('{"epochs": true}', "epochs must be an integer or null, got true"),
    ('{"xla": 1}', "xla must be true or false or null, got 1"),
    ('{"learning_rate": "fast"}', 'learning_rate must be a number or null, got "fast"'),
])
def test_hand_edited_json_is_refused_naming_the_setting(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        zoo.Config.from_json(text)


def test_json_integers_are_numbers_and_null_is_none():
    config = zoo.Config.from_json('{"learning_rate": 1, "data_dir": null}')
    assert (config.learning_rate, config.data_dir) == (1, None)


def test_a_config_saved_before_lr_decay_existed_reads_as_a_constant_rate():
    values = json.loads(zoo.Config().to_json())
    del values["lr_decay"]
    assert zoo.Config.from_json(json.dumps(values)).lr_decay == 0.0


def test_json_with_unknown_keys_is_refused():
    with pytest.raises(UsageError, match="unknown config keys"):
        zoo.Config.from_json('{"epochz": 3}')


@pytest.mark.parametrize("field, value, message", [
    ("image_size", 48, "image_size must be 32 or 64"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("steps_per_epoch", -1, "steps_per_epoch must be >= 0"),
    ("learning_rate", 0.0, "learning_rate must be a positive finite number"),
    ("learning_rate", float("inf"), "learning_rate must be a positive finite number, got inf"),
    ("kl_weight", float("nan"), "kl_weight must be a finite number >= 0, got nan"),
    ("beta_1", 1.0, r"beta_1 must be in \[0, 1\)"),
    ("lr_decay", 1.5, r"lr_decay must be in \[0, 1\] \(a share of the run; 0: constant\), got 1.5"),
    ("lr_decay", float("nan"), r"lr_decay must be in \[0, 1\]"),
    ("ema_kimg", -1.0, "ema_kimg must be >= 0"),
    ("ema_rampup", float("nan"), "ema_rampup must be >= 0"),
    ("r1_gamma", -0.1, "r1_gamma must be >= 0"),
    ("r1_batch_shrink", 0, "r1_batch_shrink must be a positive integer, got 0"),
    ("r1_batch_shrink", 4, r"r1_batch_shrink=4 shrinks the R1 penalty's batch, which is off: set r1_gamma > 0"),
    ("diffaugment", "translation,flip", "unknown transform flip; known: translation, cutout, color"),
])
def test_bad_values_fail_with_a_message_naming_the_field(field, value, message):
    with pytest.raises(UsageError, match=message):
        zoo.Config(**{field: value})


def test_python_api_gets_the_models_own_defaults_as_train_py_does():
    from zoo.models.vae import VAE

    config = zoo.Config(model="vae")
    assert {name: getattr(config, name) for name in VAE.config_defaults} == VAE.config_defaults
    assert zoo.Config(model="vae", learning_rate=5e-4).learning_rate == 5e-4  # a value given wins
    assert (zoo.Config(model="cgan").learning_rate, zoo.Config(model="cgan").latent_dim) == (5e-4, 100)


def test_train_py_and_the_python_api_build_the_same_config(run_script, tmp_path):
    code = ("import sys, train; train.FLAGS(['train.py', '--model=vae', '--workdir=W']); "
            "print(train.config_from_flags().to_json())")
    result = run_script("-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert zoo.Config.from_json(result.stdout[result.stdout.index("{"):]) == zoo.Config(model="vae", workdir="W")


def test_a_rerun_takes_the_runs_settings_for_flags_not_given_and_the_folder_it_is_in_now(run_script, tmp_path):
    # Begun elsewhere as a cGAN with the class weight of older zoos, then moved; rerun naming only the folder.
    run = tmp_path / "moved"
    run.mkdir()
    (run / "config.json").write_text(zoo.Config(model="cgan", class_loss=1.0, workdir="/elsewhere/run").to_json())
    code = ("import logging, train; logging.basicConfig(level=logging.INFO); "
            "train.FLAGS(['train.py', '--workdir=%s', '--epochs=9']); "
            "print(train.config_from_flags().to_json())" % run)
    result = run_script("-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert zoo.Config.from_json(result.stdout[result.stdout.index("{"):]) == \
        zoo.Config(model="cgan", class_loss=1.0, workdir=str(run), epochs=9)
    assert "its own settings where they differ from the defaults: class_loss=1.0, model='cgan'" in result.stderr


@pytest.mark.parametrize("field, value, message", [
    ("eval_every", -1, r"eval_every must be >= 0 \(0: off\)"),
    ("eval_samples", 1, "eval_samples must be at least 2"),
    ("features", "vgg", "features must be one of domain, inception, got 'vgg'"),
])
def test_bad_evaluation_values_fail_with_a_message_naming_the_field(field, value, message):
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
