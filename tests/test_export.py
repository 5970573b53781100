"""Exports of a trained DCGAN: TF Serving's layout and signatures a plain TensorFlow process can call."""
import json
import os

import pytest
import tensorflow_datasets as tfds

import zoo
from zoo import export
from zoo.errors import UsageError

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
def trained_workdir(tmp_path_factory, tiny_config):
    config = tiny_config(tmp_path_factory.mktemp("dcgan"))
    with tfds.testing.mock_data(num_examples=16):
        zoo.train(config)
    return config.workdir


@pytest.fixture(scope="module")
def exported(trained_workdir, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("exports"))
    config, model = export.load_trained(trained_workdir)
    return export_dir, [export.export(model, export_dir, config.model) for _ in range(2)]


def test_versions_follow_tf_serving_layout_and_never_overwrite(exported):
    export_dir, paths = exported
    assert paths == [os.path.join(export_dir, "dcgan", "1"), os.path.join(export_dir, "dcgan", "2")]
    assert sorted(os.listdir(os.path.join(export_dir, "dcgan"))) == ["1", "2"]  # no staging left behind


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
