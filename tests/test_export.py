"""Exports: TF Serving's layout, models.config and warm-up requests, bounded signatures a plain TensorFlow
process can call, and the class names and sizes a client needs."""
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import export, files
from zoo.errors import UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOAD_AND_CALL = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
report = {}
for name, function in loaded.signatures.items():
    inputs = function.structured_input_signature[1]
    report[name] = {"inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()},
                    "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in function.structured_outputs.items()}}
out = loaded.signatures["serving_default"](z=tf.random.normal([3, 8]))
sampled = [loaded.signatures["sample"](num_images=tf.constant(2), seed=tf.constant(7, tf.int64))
           for _ in range(2)]
report["call"] = {"shape": out["images"].shape.as_list(),
                  "range": [float(tf.reduce_min(out["images"])), float(tf.reduce_max(out["images"]))],
                  "uint8_max": int(tf.reduce_max(out["images_uint8"])),
                  "seeded_equal": bool(tf.reduce_all(sampled[0]["images"] == sampled[1]["images"]))}
report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "tensorflow_datasets"))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def exported(trained_runs, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("exports"))
    trained = export.load_trained(trained_runs["dcgan"])
    return export_dir, [export.export(trained, export_dir, trained.config.model) for _ in range(2)]


def test_versions_follow_tf_serving_layout_and_never_overwrite(exported):
    export_dir, paths = exported
    assert paths == [os.path.join(export_dir, "dcgan", "1"), os.path.join(export_dir, "dcgan", "2")]
    assert sorted(os.listdir(os.path.join(export_dir, "dcgan"))) == ["1", "2"]  # no staging left behind
    assert sorted(os.listdir(export_dir)) == ["dcgan", "models.config"]  # nor a half-written config


def test_export_loads_in_a_fresh_process_with_only_tensorflow(exported, run_script):
    _, paths = exported
    result = run_script("-c", LOAD_AND_CALL, paths[0])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] == []  # no project code was needed
    assert report["serving_default"] == {
        "inputs": {"z": ["float32", [None, 8]]},
        "outputs": {"images": ["float32", [None, 32, 32, 3]], "images_uint8": ["uint8", [None, 32, 32, 3]]}}
    assert report["sample"]["inputs"] == {"num_images": ["int32", []], "seed": ["int64", []]}
    assert report["sample"]["outputs"] == report["serving_default"]["outputs"]
    call = report["call"]
    assert call["shape"] == [3, 32, 32, 3]
    assert -1.0 <= call["range"][0] <= call["range"][1] <= 1.0 and call["uint8_max"] <= 255
    assert call["seeded_equal"]


def test_a_workdir_without_checkpoint_is_a_clear_error(tmp_path, tiny_config):
    config = tiny_config(tmp_path)
    os.makedirs(config.workdir, exist_ok=True)
    with open(os.path.join(config.workdir, "config.json"), "w") as f:
        f.write(config.to_json())
    with pytest.raises(UsageError, match="has no checkpoint yet"):
        export.load_trained(config.workdir)


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="is not a run directory"):
        export.load_trained(str(tmp_path))


RUN_WARMUP = """
import json, sys
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
report = {}
for path in sys.argv[1:]:
    loaded = tf.saved_model.load(path)
    runs = []
    for record in tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests"):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        runs.append([request.model_spec.name, request.model_spec.signature_name, sorted(outputs)])
    report[path] = {"runs": runs, "signatures": sorted(loaded.signatures)}
report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "tensorflow_datasets"))
print(json.dumps(report))
"""


def test_models_config_parses_and_names_every_model(exported_runs):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    export_dir, paths = exported_runs
    with open(os.path.join(export_dir, "models.config")) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    listed = {(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config}
    assert listed == {(name, f"/models/{name}", "tensorflow") for name in paths}


def test_warmup_records_parse_and_each_runs_against_its_export_without_project_code(exported_runs, run_script):
    _, paths = exported_runs
    result = run_script("-c", RUN_WARMUP, *paths.values())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report.pop("modules") == []
    for name, path in paths.items():
        runs, signatures = report[path]["runs"], report[path]["signatures"]
        assert sorted(signature for _, signature, _ in runs) == signatures  # one record per signature
        assert {model for model, _, _ in runs} == {name}
        assert all(outputs for _, _, outputs in runs)


def test_every_signature_refuses_a_batch_above_serving_batch_max(exported_runs, serving_batch_max):
    _, paths = exported_runs
    bound = serving_batch_max
    over = bound + 1
    dcgan, cgan, vae = (tf.saved_model.load(paths[name]) for name in ("dcgan", "cgan", "vae"))
    seed = tf.constant(0, tf.int64)
    assert dcgan.signatures["sample"](num_images=tf.constant(bound), seed=seed)["images"].shape[0] == bound
    dcgan_sample, dcgan_generate = dcgan.signatures["sample"], dcgan.signatures["serving_default"]
    cgan_sample, cgan_by_name = cgan.signatures["sample"], cgan.signatures["sample_by_name"]
    calls = {
        f"num_images must be in \\[0, {bound}\\]": lambda: dcgan_sample(num_images=tf.constant(over), seed=seed),
        f"z may have at most {bound} rows": lambda: dcgan_generate(z=tf.zeros([over, 8])),
        f"labels may have at most {bound} rows": lambda: cgan_sample(labels=tf.zeros([over], tf.int32), seed=seed),
        f"class_names may have at most {bound} rows": lambda: cgan_by_name(class_names=tf.constant(["circle"] * over),
                                                                           seed=seed),
        f"images may have at most {bound} rows": lambda: vae.signatures["reconstruct"](
            images=tf.zeros([over, 32, 32, 3])),
    }
    for message, call in calls.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            call()


def test_cgan_export_names_its_classes_and_samples_by_name(exported_runs):
    _, paths = exported_runs
    cgan = tf.saved_model.load(paths["cgan"])
    names = [name.decode() for name in cgan.signatures["classes"]()["class_names"].numpy()]
    assert names == ["circle", "square", "triangle", "star", "hexagon", "cross"]
    seed = tf.constant(3, tf.int64)
    by_name = cgan.signatures["sample_by_name"](class_names=tf.constant(["star", "circle", "star"]), seed=seed)
    by_index = cgan.signatures["sample"](labels=tf.constant([3, 0, 3]), seed=seed)
    np.testing.assert_array_equal(by_name["images"].numpy(), by_index["images"].numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_names must be among the classes of this "
                                                             "model: circle, square, .*unknown:.*Sneaker"):
        cgan.signatures["sample_by_name"](class_names=tf.constant(["circle", "Sneaker"]), seed=seed)


def test_exports_carry_sizes_class_names_and_training_config_as_assets(exported_runs, trained_runs,
                                                                       serving_batch_max):
    _, paths = exported_runs
    for name, path in paths.items():
        with open(os.path.join(path, "assets.extra", "model.json")) as f:
            described = json.load(f)
        with open(os.path.join(path, "assets.extra", "config.json")) as f, \
                open(os.path.join(trained_runs[name], "config.json")) as g:
            assert json.load(f) == json.load(g)
        assert {k: described[k] for k in ("model", "latent_dim", "image_size", "channels", "serving_batch_max")} == \
            {"model": name, "latent_dim": 8, "image_size": 32, "channels": 3, "serving_batch_max": serving_batch_max}
        assert sorted(described["signatures"]) == sorted(tf.saved_model.load(path).signatures)
        assert described["class_names"] == (["circle", "square", "triangle", "star", "hexagon", "cross"]
                                             if name == "cgan" else [])


def test_the_export_holds_the_served_networks_only(exported, trained_runs):
    _, paths = exported
    trained = export.load_trained(trained_runs["dcgan"])
    model = trained.model
    loaded = tf.saved_model.load(paths[0])
    assert sorted(tuple(v.shape) for v in loaded.variables) == \
        sorted(tuple(v.shape) for v in model.generator.weights)  # no discriminator, no optimiser state
    assert len(loaded.variables) < len(model.generator.weights) + len(model.discriminator.weights)


def test_a_version_taken_between_listing_and_claiming_is_skipped(trained_runs, tmp_path, monkeypatch):
    """The race, made deterministic: another export takes version 1 after this one listed the folder."""
    trained = export.load_trained(trained_runs["dcgan"])
    model = trained.model
    other = tmp_path / "dcgan" / "1"
    os.makedirs(other)
    (other / "saved_model.pb").write_bytes(b"the other export")
    listed = iter([1])
    real = export.next_version
    monkeypatch.setattr(export, "next_version", lambda model_dir: next(listed, None) or real(model_dir))
    assert export.export(trained, str(tmp_path), "dcgan") == str(tmp_path / "dcgan" / "2")
    assert (other / "saved_model.pb").read_bytes() == b"the other export"
    assert sorted(os.listdir(tmp_path / "dcgan")) == ["1", "2"]


def test_an_export_killed_midway_leaves_nothing_the_next_export_keeps(trained_runs, tmp_path, dead_pid):
    dead_prefix = files.partial_prefix().replace(str(os.getpid()), str(dead_pid), 1)
    killed = tmp_path / "dcgan" / f"{dead_prefix}x1y2"  # the folder a killed export wrote into
    (killed / "variables").mkdir(parents=True)
    (killed / "saved_model.pb").write_bytes(b"half an export")
    running = tmp_path / "dcgan" / f"{files.partial_prefix()}z3"  # an export still writing
    running.mkdir()
    export.export(export.load_trained(trained_runs["dcgan"]), str(tmp_path), "dcgan")
    assert sorted(os.listdir(tmp_path / "dcgan")) == [running.name, "1"]


def test_an_export_whose_folder_was_emptied_under_it_publishes_nothing(trained_runs, tmp_path, monkeypatch):
    # Another process's cleanup removed what write_out wrote; the version must not appear half-made.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", lambda self, path, **kwargs: None)
    with pytest.raises(UsageError, match="lost its SavedModel while being written"):
        export.export(export.load_trained(trained_runs["dcgan"]), str(tmp_path), "dcgan")
    assert os.listdir(tmp_path / "dcgan") == []


def test_two_exports_at_once_get_two_complete_versions(trained_runs, tmp_path):
    command = [sys.executable, "export.py", f"--workdir={trained_runs['dcgan']}", f"--export_dir={tmp_path}"]
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}) for _ in range(2)]
    try:
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sorted(os.listdir(tmp_path / "dcgan")) == ["1", "2"]  # no staging folder left
    for version in ("1", "2"):
        loaded = tf.saved_model.load(str(tmp_path / "dcgan" / version))
        assert loaded.signatures["serving_default"](z=tf.zeros([1, 8]))["images"].shape == [1, 32, 32, 3]


@pytest.mark.parametrize("name", ["dcgan", "faces-64", "celeb_a.v2", "7"])
def test_plain_names_are_accepted(name):
    assert export.check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "a..b", "sp ace", "é",
                                  "x" * 129])
def test_names_that_are_not_one_plain_folder_are_refused(name):
    with pytest.raises(UsageError, match="is not allowed: use 1 to 128 letters, digits"):
        export.check_name(name)


def test_a_checkpoint_without_the_model_weights_is_refused(trained_runs, tmp_path):
    """Had the names drifted, `expect_partial()` alone would export freshly initialised weights."""
    workdir = tmp_path / "run"
    shutil.copytree(trained_runs["dcgan"], workdir, ignore=shutil.ignore_patterns("checkpoints"))
    tf.train.Checkpoint(model=tf.Module()).save(str(workdir / "checkpoints" / "ckpt"))
    with pytest.raises(UsageError, match=r"ckpt-1 does not hold the weights of the dcgan that config.json "
                                         r"describes \(.*\); export a run directory as train.py left it"):
        export.load_trained(str(workdir))


def test_a_run_exports_without_its_training_data(tmp_path, tiny_config):
    """A `folder:` run, exported after its folder is gone: the run saved the dataset's facts."""
    os.makedirs(tmp_path / "pics")
    for index in range(8):
        keras.utils.save_img(str(tmp_path / "pics" / f"{index}.png"), np.full((36, 36, 3), 30 * index, np.uint8))
    config = tiny_config(tmp_path / "run", dataset=f"folder:{tmp_path / 'pics'}", data_dir=str(tmp_path / "tfds"))
    zoo.train(config)
    with open(tmp_path / "run" / "dataset.json") as f:
        assert json.load(f) == {"name": f"folder:{tmp_path / 'pics'}", "channels": 3, "num_classes": 0,
                                "class_names": [], "data_version": "image_folder 1.1.0"}
    shutil.rmtree(tmp_path / "pics")
    shutil.rmtree(tmp_path / "tfds")
    trained = export.load_trained(config.workdir)
    assert (trained.config.dataset, trained.model.channels) == (config.dataset, 3)
    assert os.path.isdir(export.export(trained, str(tmp_path / "exports"), "faces"))


def test_damaged_dataset_facts_are_one_clear_error(trained_runs, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained_runs["dcgan"], workdir)
    (workdir / "dataset.json").write_text('{"channels": 3}')
    with pytest.raises(UsageError, match=r"dataset.json is damaged \(KeyError: 'name'\); delete it"):
        export.load_trained(str(workdir))


def test_a_mixed_float16_run_exports_in_float32(tmp_path, tiny_config, mock_tfds):
    # Its checkpoint holds loss-scaled optimisers; load_trained once built plain ones and refused it.
    config = tiny_config(tmp_path / "run", precision="mixed_float16")
    try:
        zoo.train(config)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    trained = export.load_trained(config.workdir)
    assert trained.model.generator.compute_dtype == "float32"
    assert int(trained.model.step) == 2
    assert os.path.isdir(export.export(trained, str(tmp_path / "exports"), "dcgan"))


def test_a_damaged_newest_checkpoint_exports_the_one_before(trained_runs, tmp_path, caplog):
    workdir = tmp_path / "run"
    shutil.copytree(trained_runs["dcgan"], workdir)
    newest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    steps = [int(path.rsplit("-", 1)[1]) for path in tf.train.get_checkpoint_state(
        str(workdir / "checkpoints")).all_model_checkpoint_paths]
    assert len(steps) >= 2, steps
    with open(f"{newest}.index", "wb") as f:
        f.write(b"garbage")
    model = export.load_trained(str(workdir)).model
    assert int(model.step) == steps[-2]
    assert "is damaged" in caplog.text
