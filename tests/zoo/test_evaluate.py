"""`python -m zoo.evaluate` as a user runs it: a work directory, an export, and one-line errors."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import zoo
from zoo import export
from zoo.errors import UsageError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# zoo.evaluate's main on an export, in a process where every model class of the zoo refuses to be built
# or called: the images can only come from the SavedModel's own `sample` signature.
WITHOUT_MODEL_CODE = """
import sys
from absl import app
import zoo
from zoo import evaluate

def refuse(*args, **kwargs):
    raise AssertionError("project model code was used for sampling")

for name in zoo.MODELS.names():
    model_class = zoo.MODELS.get(name)
    for method in ("__init__", "call", "generate", "serving_endpoints", "from_run"):
        setattr(model_class, method, refuse)
evaluate.define_flags()
sys.argv = ["zoo.evaluate", *sys.argv[1:]]
app.run(evaluate.run_main)
"""


def _run(*args, env=None):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


@pytest.fixture(scope="module")
def workdir(tiny_config, tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("dcgan"), dataset="shapes")
    zoo.train(config)
    return config.workdir


def test_a_workdir_is_scored_into_eval_json_and_metrics_jsonl(workdir, shapes_feature_cache):
    result = _run("-m", "zoo.evaluate", f"--workdir={workdir}", "--num_samples=100",
                  f"--cache_dir={shapes_feature_cache}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, "eval.json")) as f:
        record = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert json.loads(f.readlines()[-1]) == record
    assert record["step"] == 2 and record["checkpoint"] == "latest" and record["generated_images"] == 100
    assert record["real_split"] == "test" and record["real_images"] == 3000 and record["features"] == "domain"
    for name in ("fid", "kid", "kid_std", "precision", "recall"):
        assert f"\n{name} " in result.stdout and isinstance(record[name], float)  # the printed table


def test_generator_raw_samples_a_gans_trained_weights_instead_of_their_average(workdir, monkeypatch):
    from zoo import evaluate, scoring
    from zoo.signatures import image_outputs, seeded_normal

    monkeypatch.setattr(evaluate, "evaluate_model", lambda config, source, sampler, *args, **kwargs: {"s": sampler})
    model = export.load_trained(workdir).model
    z = seeded_normal(4, model.latent_dim, 0)  # what the first batch of 4 draws with seed 0
    expected = {"ema": model.ema_generator, "raw": model.generator}
    sampled = {}
    for generator in ("ema", "raw"):
        record = evaluate.evaluate_workdir(workdir, 4, generator=generator, progress=False)
        assert record.get("generator") == ("raw" if generator == "raw" else None)
        sampled[generator] = next(scoring.generated_images(record["s"], 4, 0))[0].numpy()
        wanted = image_outputs(expected[generator](z, training=False))["images_uint8"]
        assert np.array_equal(sampled[generator], wanted.numpy()), generator
    assert not np.array_equal(sampled["ema"], sampled["raw"])


def _run_files(workdir):
    paths = {name: pathlib.Path(workdir, name) for name in ("eval.json", "metrics.jsonl")}
    return {name: path.read_bytes() if path.exists() else None for name, path in paths.items()}


def test_generator_raw_writes_nothing_into_the_run(workdir, shapes_feature_cache):
    before = _run_files(workdir)
    result = _run("-m", "zoo.evaluate", f"--workdir={workdir}", "--generator=raw", "--num_samples=20",
                  f"--cache_dir={shapes_feature_cache}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _run_files(workdir) == before
    assert re.search(r"^generator +raw$", result.stdout, re.M)  # the printed table says what it scored


def test_generator_raw_without_an_average_or_a_workdir_is_one_line(monkeypatch):
    from zoo import evaluate

    runs = {"runs/plain": (zoo.Config(ema_kimg=0), types.SimpleNamespace(ema_generator=None), None),
            "runs/vae": (zoo.Config(model="vae"), types.SimpleNamespace(), None)}  # what load_trained gives
    monkeypatch.setattr(export, "load_trained", lambda workdir, checkpoint: runs[workdir])
    with pytest.raises(UsageError, match=re.escape(
            "--generator=raw: runs/plain keeps no moving average of its generator (ema_kimg=0), "
            "so it samples its trained weights already: drop the flag")):
        evaluate.evaluate_workdir("runs/plain", 4, generator="raw")
    with pytest.raises(UsageError, match=re.escape(
            "--generator=raw: runs/vae is a vae; only the GANs keep a moving average of their generator")):
        evaluate.evaluate_workdir("runs/vae", 4, generator="raw")
    result = _run("-m", "zoo.evaluate", "--dataset=shapes", "--generator=raw")
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        "error: --generator chooses between a work directory's generators: pass it with --workdir")


def test_an_export_is_scored_without_the_projects_model_code(workdir, shapes_feature_cache, tmp_path):
    trained = export.load_trained(workdir)
    path = export.export(trained, str(tmp_path / "exports"), trained.config.model)
    result = _run("-c", WITHOUT_MODEL_CODE, f"--export={path}", "--dataset=shapes", "--num_samples=100",
                  f"--cache_dir={shapes_feature_cache}", f"--output_dir={tmp_path / 'scores'}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "scores" / "eval.json") as f:
        record = json.load(f)
    assert record["export"] == path and record["generated_images"] == 100 and record["fid"] > 0


def test_missing_inception_weights_are_one_line(tmp_path):
    result = _run("-m", "zoo.evaluate", "--dataset=shapes", "--features=inception", env={"KERAS_HOME": str(tmp_path)})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: no Inception weights: download https://" in result.stderr
    assert f"into {tmp_path}/models/" in result.stderr


def test_an_unlabelled_dataset_without_inception_is_one_line(tmp_path):
    from PIL import Image

    os.makedirs(tmp_path / "pics")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "pics" / "a.png")
    result = _run("-m", "zoo.evaluate", f"--dataset=folder:{tmp_path / 'pics'}", f"--data_dir={tmp_path / 'tfds'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "has no labels or attributes to train the domain feature network on: pass --features=inception" \
        in result.stderr


def test_a_workdir_without_checkpoints_is_one_line(tiny_config, tmp_path):
    config = tiny_config(tmp_path)
    with open(tmp_path / "config.json", "w") as f:
        f.write(config.to_json())
    result = _run("-m", "zoo.evaluate", f"--workdir={tmp_path}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"error: {tmp_path} has no checkpoint yet" in result.stderr


def test_a_run_of_another_version_of_its_data_is_not_scored_against_this_one(workdir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(workdir, run)
    with open(run / "dataset.json") as f:
        facts = json.load(f)
    facts["data_version"] = "shapes 2.0.0"
    (run / "dataset.json").write_text(json.dumps(facts))
    from zoo import evaluate
    with pytest.raises(zoo.errors.RunMismatchError, match="trained on shapes 2.0.0, and shapes is now shapes 3.0.0"):
        evaluate.evaluate_workdir(str(run), num_samples=10)
