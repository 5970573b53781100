"""Specification of scoring a model: a trained DCGAN beats its initialisation, and training with
--eval_every logs its scores, keeps the best checkpoint and draws the quality curve."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import device, export, scoring, training
from zoo.datasets import get_source

SCORED = 500  # generated images per score


@pytest.fixture(scope="module")
def run(tiny_config, shapes_feature_cache, tmp_path_factory):
    """A small DCGAN on shapes, scored at initialisation, then trained 4 x 50 steps with an evaluation
    every 100 steps."""
    config = tiny_config(tmp_path_factory.mktemp("dcgan"), dataset="shapes", batch_size=32, steps_per_epoch=50,
                         epochs=4, latent_dim=32, base_filters=16, eval_every=100, eval_samples=300,
                         cache_dir=shapes_feature_cache, ema_kimg=0, diffaugment="", lr_decay=0.0)  # the paper's
    # plain DCGAN (its rate constant: with --lr_decay=0.5 over the last 100 of these 200 steps, FID went
    # 80.0 -> 83.5, a run too short for FID to say anything)
    source = get_source(config)
    initial = training.build_model(config, source, device.resolve("float32", False, "default"))
    at_start = scoring.evaluate_model(config, source, scoring.model_sampler(initial), SCORED, progress=False)
    zoo.train(config)
    with open(os.path.join(config.workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return config, at_start, [record for record in records if "fid" in record]


def test_a_briefly_trained_dcgan_scores_better_than_its_initialisation(run):
    """Its initialisation draws one flat grey image whatever z, unlike any real image: precision 0.
    200 steps later its images are shapes, if rough ones: on shapes 3.0.0 with this configuration and
    seed, FID went 80.0 -> 32.6 (500 samples, the briefly trained feature network of the tests;
    measured 2026-11-24). Precision (0.002), recall (0.05) and KID (0.42 -> 0.38) moved too little
    to test so short a run; on shapes 2.0.0 precision had moved most (0 -> 0.44), FID least."""
    config, at_start, _ = run
    model = export.load_trained(config.workdir).model
    trained = scoring.evaluate_model(config, get_source(config), scoring.model_sampler(model), SCORED,
                                     progress=False)
    assert at_start["precision"] == 0.0
    assert trained["fid"] < 0.6 * at_start["fid"], (at_start["fid"], trained["fid"])  # 0.41 measured
    assert trained["real_split"] == "test" and trained["features"] == "domain"


def test_evaluations_during_training_are_logged_with_step_and_time(run):
    config, _, evaluations = run
    assert [record["step"] for record in evaluations] == [100, 200]
    assert 0 < evaluations[0]["elapsed_seconds"] <= evaluations[1]["elapsed_seconds"]
    for record in evaluations:
        assert np.isfinite([record["fid"], record["kid"]]).all() and record["generated_images"] == 300
        assert record["features"] == "domain" and "classifier_test_accuracy" in record
    assert os.listdir(os.path.join(config.workdir, "tensorboard", "eval"))
    assert os.path.getsize(os.path.join(config.workdir, "quality.png")) > 0


def test_the_best_checkpoint_is_kept_and_exported(run):
    config, _, evaluations = run
    best = min(evaluations, key=lambda record: record["fid"])
    with open(os.path.join(config.workdir, "checkpoints", "best", "best.json")) as f:
        assert json.load(f) == {"step": best["step"], "fid": best["fid"], "feature_sha256": best["feature_sha256"]}
    model = export.load_trained(config.workdir, checkpoint="best").model
    assert int(model.step.numpy()) == best["step"]
    assert int(export.load_trained(config.workdir)[1].step.numpy()) == 200


def test_a_conditional_model_is_scored_on_class_accuracy(tiny_config, shapes_feature_cache, tmp_path):
    config = tiny_config(tmp_path, model="cgan", dataset="shapes", cache_dir=shapes_feature_cache)
    source = get_source(config)
    model = training.build_model(config, source, device.resolve("float32", False, "default"))
    record = scoring.evaluate_model(config, source, scoring.model_sampler(model), 60, progress=False)
    assert 0 <= record["class_accuracy"] <= 1
    assert record["class_accuracy_real"] == pytest.approx(record["classifier_test_accuracy"])


def test_a_vae_is_scored_on_its_samples_and_its_test_likelihood(tiny_config, shapes_feature_cache, tmp_path):
    from zoo import evaluate

    config = tiny_config(tmp_path, model="vae", dataset="shapes", cache_dir=shapes_feature_cache)
    zoo.train(config)
    record = evaluate.evaluate_workdir(config.workdir, 60, progress=False)
    assert record["model"] == "vae" and record["generated_images"] == 60 and np.isfinite(record["fid"])
    assert record["test_negative_elbo_nats"] > 0 and record["test_split"] == "test"


def test_a_resumed_runs_clock_counts_the_steps_after_its_last_evaluation(tmp_path):
    lines = [{"step": 100, "elapsed_seconds": 25.0, "fid": 9.0}, {"epoch": 1, "step": 128, "seconds": 30.0},
             {"epoch": 2, "step": 200, "seconds": 12.5, "stopped": True},  # SIGTERM: the checkpoint at 200
             {"workdir": str(tmp_path), "step": 128, "fid": 9.5}]  # python -m zoo.evaluate's line
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert scoring._elapsed_so_far(str(tmp_path / "metrics.jsonl")) == 42.5


def test_a_run_killed_in_its_first_epoch_resumes_its_clock_from_its_last_evaluation(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 100, "elapsed_seconds": 25.0, "fid": 9.0}) + "\n")
    assert scoring._elapsed_so_far(str(tmp_path / "metrics.jsonl")) == 25.0
    assert scoring._elapsed_so_far(str(tmp_path / "absent.jsonl")) == 0.0


class _Counter:
    """A model stand-in: fit calls on_train_batch_end once per execution, so the step jumps."""

    def __init__(self):
        self.value, self.stop_training = 0, False

    @property
    def step(self):
        return self

    def numpy(self):
        return self.value


@pytest.mark.parametrize("steps_per_execution", [1, 4, 13])
def test_evaluations_fire_when_the_step_crosses_a_multiple_of_eval_every(steps_per_execution, tiny_config, tmp_path):
    evaluation = scoring.PeriodicEvaluation(tiny_config(tmp_path), None, every=6, workdir=str(tmp_path))
    evaluation.set_model(_Counter())
    evaluation.last_step = 0
    evaluated = []
    evaluation.evaluate = evaluated.append
    for step in range(steps_per_execution, 40, steps_per_execution):
        evaluation.model.value = step
        evaluation.on_train_batch_end(step)
    expected = [step for step in range(steps_per_execution, 40, steps_per_execution)
                if step // 6 > (step - steps_per_execution) // 6]
    assert evaluated == expected
    assert evaluated[:2] == {1: [6, 12], 4: [8, 12], 13: [13, 26]}[steps_per_execution]


def test_no_evaluation_once_a_signal_asked_training_to_stop(tiny_config, tmp_path):
    evaluation = scoring.PeriodicEvaluation(tiny_config(tmp_path), None, every=6, workdir=str(tmp_path))
    evaluation.set_model(_Counter())
    evaluation.last_step = 0
    evaluated = []
    evaluation.evaluate = evaluated.append
    evaluation.model.value, evaluation.model.stop_training = 6, True
    evaluation.on_train_batch_end(0)
    assert evaluated == []


def test_a_signal_during_an_evaluation_abandons_it_after_one_batch(tiny_config, tmp_path, monkeypatch):
    # SIGTERM must lead to a save and exit within seconds, not after the whole sample is scored.
    drawn, stop_after = [], 3

    def endless(sampler, num, seed):
        while True:
            drawn.append(1)
            yield np.zeros([2, 32, 32, 3], np.uint8), None

    monkeypatch.setattr(scoring, "generated_images", endless)
    evaluation = scoring.PeriodicEvaluation(tiny_config(tmp_path), None, every=6, workdir=str(tmp_path),
                                            stopping=lambda: len(drawn) >= stop_after)
    evaluation.network = types.SimpleNamespace(embed=lambda images: (np.zeros([len(images), 4]), None))
    evaluation.real, evaluation.sampler = object(), None
    evaluation.set_model(types.SimpleNamespace(stop_training=False))
    evaluation.evaluate(6)
    assert len(drawn) == stop_after
    assert not os.path.exists(evaluation.metrics_path)  # no score of a partial sample
    # StopOnSignal had seen this execution's end before the signal: without this, Keras would train
    # one more execution before the save.
    assert evaluation.model.stop_training


@pytest.mark.parametrize("chief_better", [False, True])
def test_every_worker_saves_the_best_checkpoint_when_the_chief_scored_better(chief_better, tiny_config, tmp_path):
    # Multi-worker: every worker takes part in the save, and only the chief knows the best FID so far
    # (another worker's run directory is a fresh temporary one: its own verdict is always "better").
    decide = training.chief_decides(tf.distribute.get_strategy(), chief=False)
    assert decide(True) is False  # a worker's own verdict does not count
    evaluation = scoring.PeriodicEvaluation(tiny_config(tmp_path), None, every=6, workdir=str(tmp_path),
                                            agree=lambda better: chief_better)
    saved = []
    evaluation.best = types.SimpleNamespace(save=lambda checkpoint_number: saved.append(checkpoint_number))
    evaluation.best_fid = 1.0
    os.makedirs(evaluation.best_dir)
    evaluation.keep_if_best(6, 2.0, "sha")
    assert saved == ([6] if chief_better else [])


@pytest.mark.parametrize("kept, recorded, trained_to, scored_by, logged_by, expected", [
    (5, 5, 10, "abc", None, 1.5),  # the record names the kept checkpoint, at a step this run has trained
    (5, 3, 10, "abc", None, float("inf")),  # killed between saving the checkpoint and writing best.json
    (5, 5, 4, "abc", None, float("inf")),  # resumed from before the best: it trains step 5 again
    (5, 5, 10, "def", None, float("inf")),  # scored by another feature network (another cache or --inception)
    (5, 5, 10, None, "abc", 1.5),  # a best.json from before it named its network: metrics.jsonl's line does
    (5, 5, 10, None, "def", float("inf")),
    (5, 5, 10, None, None, float("inf")),  # no way to tell
])
def test_the_best_fid_to_beat_is_trusted_only_when_record_and_checkpoint_agree(kept, recorded, trained_to,
                                                                                scored_by, logged_by, expected,
                                                                                tmp_path):
    import tensorflow as tf

    best_dir = str(tmp_path / "best")
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), best_dir, 1).save(checkpoint_number=kept)
    with open(os.path.join(best_dir, "best.json"), "w") as f:
        json.dump({"step": recorded, "fid": 1.5, **({"feature_sha256": scored_by} if scored_by else {})}, f)
    metrics_path = tmp_path / "metrics.jsonl"
    metrics_path.write_text("".join(json.dumps(line) + "\n" for line in [
        {"epoch": 1, "step": 4, "seconds": 9.0},
        {"step": recorded, "fid": 1.5, **({"feature_sha256": logged_by} if logged_by else {})}]))
    assert scoring._best_fid(best_dir, trained_to, "abc", str(metrics_path)) == expected
