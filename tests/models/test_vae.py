"""Specification of the VAE: its loss is the negative ELBO; it trains, evaluates, resumes and exports."""
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import checkpoints, export, losses, training
from zoo.datasets import DataSource
from zoo.errors import RunMismatchError
from zoo.models.vae import VAE

SIZE, LATENT = 32, 4
PIXEL_128 = 128 / 127.5 - 1.0  # an 8-bit grey level, scaled to [-1, 1]


def _vae(likelihood="bernoulli", channels=1, **kwargs):
    return VAE(image_size=SIZE, channels=channels, latent_dim=LATENT, base_filters=8, likelihood=likelihood,
               **kwargs)


def _set_constant_output(layer, bias):
    """A layer whose output is `bias` whatever its input."""
    layer.kernel.assign(tf.zeros_like(layer.kernel))
    layer.bias.assign(tf.broadcast_to(tf.constant(bias, tf.float32), layer.bias.shape))


def _hand_made(model, decoder_bias):
    """q(z|x) = N([1, 0, 0, 0], diag(1, 2, 1, 1)) for every x; p(x|z) with every parameter `decoder_bias`."""
    _set_constant_output(model.encoder.get_layer("mean"), [1.0, 0.0, 0.0, 0.0])
    _set_constant_output(model.encoder.get_layer("log_variance"), [0.0, math.log(2.0), 0.0, 0.0])
    _set_constant_output(model.decoder.get_layer("parameters"), decoder_bias)
    return model


HAND_MADE_KL = 0.5 + 0.5 * (2.0 - 1.0 - math.log(2.0))  # (s^2 + m^2 - 1 - log s^2) / 2 per dimension


def _images(values, channels=1):
    """One constant image per value."""
    return tf.constant(values, tf.float32)[:, None, None, None] * tf.ones([1, SIZE, SIZE, channels])


def test_bernoulli_negative_elbo_sums_over_pixels_and_latents_then_weighs_the_kl():
    model = _hand_made(_vae(kl_weight=0.5), math.log(3.0))  # p(pixel = 1) = 3/4 everywhere
    white_and_black = _images([1.0, -1.0])  # Bernoulli targets 1 and 0
    terms = model.negative_elbo(white_and_black, tf.zeros([2, LATENT]))
    reconstruction = SIZE * SIZE * np.array([-math.log(0.75), -math.log(0.25)])
    np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], [HAND_MADE_KL] * 2, rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], reconstruction + 0.5 * HAND_MADE_KL, rtol=1e-5)


def test_logistic_negative_elbo_is_the_discretised_likelihood_of_every_pixel():
    model = _hand_made(_vae("logistic", channels=3), 0.0)  # logistic(mean 0, scale 1) for every pixel
    terms = model.negative_elbo(_images([PIXEL_128], channels=3), tf.zeros([1, LATENT]))
    sigmoid = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    per_pixel = -math.log(sigmoid(PIXEL_128 + 1 / 255) - sigmoid(PIXEL_128 - 1 / 255))
    np.testing.assert_allclose(terms["reconstruction"], [SIZE * SIZE * 3 * per_pixel], rtol=1e-4)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + HAND_MADE_KL, rtol=1e-6)


def test_logistic_scales_are_floored():
    # A decoder asking for log-scale -30 gets -7: a narrower logistic only overflows.
    images = _images([PIXEL_128], channels=3)
    floored = _hand_made(_vae("logistic", channels=3), [0.0] * 3 + [-30.0] * 3)
    at_floor = _hand_made(_vae("logistic", channels=3), [0.0] * 3 + [-7.0] * 3)
    np.testing.assert_allclose(floored.negative_elbo(images, tf.zeros([1, LATENT]))["reconstruction"],
                               at_floor.negative_elbo(images, tf.zeros([1, LATENT]))["reconstruction"])


def test_z_is_the_reparameterised_sample_mean_plus_sigma_times_noise():
    model = _hand_made(_vae(), 0.0)
    noise = tf.constant([[0.5, -1.0, 2.0, 0.0]])
    z = tf.constant([[1.5, -math.sqrt(2.0), 2.0, 0.0]])  # mean + exp(log_variance / 2) * noise
    targets = (_images([PIXEL_128]) + 1.0) / 2.0
    model.decoder.get_layer("parameters").kernel.assign(
        tf.random.stateless_normal(model.decoder.get_layer("parameters").kernel.shape, seed=[0, 1]))
    np.testing.assert_allclose(model.negative_elbo(_images([PIXEL_128]), noise)["reconstruction"],
                               losses.bernoulli_nll(targets, model.decoder(z)), rtol=1e-6)


def test_importance_weighted_estimate_reaches_the_true_likelihood_the_elbo_misses():
    # A decoder that ignores z makes p(x) = p(x|z) = 2^-pixels exactly; the negative
    # ELBO stays KL above it, the importance-weighted estimate closes the gap.
    model = _hand_made(_vae(), 0.0)
    images = _images([1.0, -1.0])
    exact = SIZE * SIZE * math.log(2.0)
    importance_weighted_nll = tf.function(model.importance_weighted_nll)
    estimate = importance_weighted_nll(images, 500, tf.constant([0, 0]))
    np.testing.assert_allclose(estimate, [exact] * 2, atol=0.1)
    np.testing.assert_allclose(model.negative_elbo(images, tf.zeros([2, LATENT]))["loss"],
                               [exact + HAND_MADE_KL] * 2, rtol=1e-6)
    np.testing.assert_array_equal(estimate, importance_weighted_nll(images, 500, tf.constant([0, 0])))


def test_importance_weighted_estimate_is_the_same_whatever_samples_are_decoded_together():
    model = _vae("logistic", 3)
    images = tf.random.stateless_uniform([3, SIZE, SIZE, 3], [0, 3], -1.0, 1.0)
    one_by_one = model.importance_weighted_nll(images, 7, tf.constant([0, 1]), chunk=1)
    for chunk in (3, 7, 64):  # a last chunk that is partial, one chunk, a chunk larger than k
        np.testing.assert_allclose(model.importance_weighted_nll(images, 7, tf.constant([0, 1]), chunk=chunk),
                                   one_by_one, rtol=1e-5)


@pytest.mark.parametrize("likelihood,channels", [("bernoulli", 1), ("logistic", 3)])
def test_train_step_moves_encoder_and_decoder_and_test_step_does_not(likelihood, channels):
    model = _vae(likelihood, channels)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = {"images": tf.random.stateless_uniform([8, SIZE, SIZE, channels], [0, 2], -1.0, 1.0)}
    before = [v.numpy() for v in model.trainable_variables]
    logs = model.test_step(batch)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    assert sorted(logs) == ["kl", "loss", "reconstruction"]
    model.train_step(batch)
    for network in (model.encoder, model.decoder):
        assert all(not np.array_equal(b, v) for b, v in zip(before, model.trainable_variables)
                   if any(v is w for w in network.trainable_variables))
    assert int(model.step) == 1


@pytest.mark.parametrize("flag,channels,expected", [("auto", 1, "bernoulli"), ("auto", 3, "logistic"),
                                                    ("logistic", 1, "logistic"), ("bernoulli", 3, "bernoulli")])
def test_likelihood_flag_and_its_per_dataset_default(flag, channels, expected):
    source = DataSource(name="fake", channels=channels, num_classes=0, prepare=None)
    model = VAE.from_run(zoo.Config(model="vae", likelihood=flag, latent_dim=LATENT, base_filters=8), source)
    assert model.likelihood == expected
    assert model.decoder.output.shape[-1] == channels * {"bernoulli": 1, "logistic": 2}[expected]


def test_grid_pairs_test_images_with_their_reconstructions_above_prior_samples():
    model = _vae()
    originals = tf.random.stateless_uniform([16, SIZE, SIZE, 1], [0, 3], -1.0, 1.0)
    grid = model.grid(model.grid_inputs(64, seed=0, test_images=lambda num: originals[:num]))
    assert grid.shape == (8, 8, SIZE, SIZE, 1)
    np.testing.assert_array_equal(grid[0], originals[:8])
    np.testing.assert_array_equal(grid[2], originals[8:])
    np.testing.assert_allclose(grid[1], model.reconstruct(originals[:8]), atol=1e-6)
    assert np.abs(grid).max() <= 1.0


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
specs = {name: {"inputs": {k: [v.shape.as_list(), v.dtype.name] for k, v in f.structured_input_signature[1].items()},
                "outputs": {k: [v.shape.as_list(), v.dtype.name] for k, v in f.structured_outputs.items()}}
         for name, f in model.signatures.items()}
images = tf.zeros([2, 32, 32, 3])
calls = {"encode": model.signatures["encode"](images=images),
         "decode": model.signatures["decode"](z=tf.zeros([2, 4])),
         "reconstruct": model.signatures["reconstruct"](images=images),
         "sample": model.signatures["sample"](num_images=tf.constant(3), seed=tf.constant(7, tf.int64)),
         "sample again": model.signatures["sample"](num_images=tf.constant(3), seed=tf.constant(7, tf.int64))}
print(json.dumps({"specs": specs, "shapes": {c: {k: v.shape.as_list() for k, v in out.items()} for c, out in calls.items()},
                  "sample is seeded": bool(tf.reduce_all(calls["sample"]["images"] == calls["sample again"]["images"]))}))
"""


def _in_fresh_process(path):
    """What a process with only TensorFlow imported sees of the export."""
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, path], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train one epoch, resume for a second, export: the tiny run every test below reads."""
    workdir = str(tmp_path_factory.mktemp("vae_run"))
    config = zoo.Config(**{**VAE.config_defaults, "latent_dim": LATENT}, model="vae", dataset="shapes",
                        image_size=SIZE, batch_size=8, steps_per_epoch=2, epochs=1, base_filters=8,
                        workdir=workdir)
    zoo.train(config)
    with open(f"{workdir}/eval.json") as f:
        first_evaluation = json.load(f)
    resumed = config.replace(epochs=2, iw_samples=2)  # the evaluation may change on resume
    model = zoo.train(resumed)
    path = export.export(export.load_trained(workdir), str(tmp_path_factory.mktemp("exports")), "vae")
    return {"config": resumed, "model": model, "first_evaluation": first_evaluation, "export": path}


def test_run_resumes_where_it_stopped(run):
    assert int(run["model"].step) == 4
    assert sorted(os.listdir(os.path.join(run["config"].workdir, "samples"))) == ["epoch_0001.png", "epoch_0002.png"]


def test_run_writes_the_test_negative_elbo_in_nats_and_bits_per_dim(run):
    with open(f"{run['config'].workdir}/eval.json") as f:
        evaluation = json.load(f)
    assert evaluation["epoch"] == 2 and evaluation["step"] == 4
    assert evaluation["test_images"] == 3000  # every image of the shapes test split, none dropped
    nats = evaluation["test_negative_elbo_nats"]
    assert nats == pytest.approx(evaluation["test_reconstruction_nats"] + evaluation["test_kl_nats"])
    assert evaluation["test_negative_elbo_bits_per_dim"] == pytest.approx(nats / (SIZE * SIZE * 3 * math.log(2)))
    assert 0 < evaluation["test_iw_nll_nats"] < nats * 1.01
    assert run["first_evaluation"]["epoch"] == 1 and "test_iw_nll_nats" not in run["first_evaluation"]
    with open(f"{run['config'].workdir}/metrics.jsonl") as f:
        lines = [json.loads(line) for line in f]
    assert [line["epoch"] for line in lines] == [1, 1, 2, 2]  # training, then evaluation, each epoch run
    assert lines[-1] == evaluation


def test_resume_refuses_a_changed_objective(run):
    for change in ({"kl_weight": 0.5}, {"likelihood": "bernoulli"}):
        with pytest.raises(RunMismatchError, match=list(change)[0]):
            zoo.train(run["config"].replace(**change))


def test_keras_file_reloads_the_same_model(run):
    reloaded = keras.saving.load_model(f"{run['config'].workdir}/model.keras")
    assert isinstance(reloaded, VAE) and reloaded.likelihood == "logistic"
    images = tf.random.stateless_uniform([2, SIZE, SIZE, 3], [0, 4], -1.0, 1.0)
    np.testing.assert_allclose(reloaded.reconstruct(images), run["model"].reconstruct(images), atol=1e-6)


def test_export_has_the_documented_signatures(run):
    seen = _in_fresh_process(run["export"])
    image, z = [[None, SIZE, SIZE, 3], "float32"], [[None, LATENT], "float32"]
    outputs = {"images": [[None, SIZE, SIZE, 3], "float32"], "images_uint8": [[None, SIZE, SIZE, 3], "uint8"]}
    assert seen["specs"] == {
        "serving_default": {"inputs": {"z": z}, "outputs": outputs},
        "decode": {"inputs": {"z": z}, "outputs": outputs},
        "encode": {"inputs": {"images": image},
                   "outputs": {"mean": [[None, LATENT], "float32"], "log_variance": [[None, LATENT], "float32"]}},
        "reconstruct": {"inputs": {"images": image}, "outputs": outputs},
        "sample": {"inputs": {"num_images": [[], "int32"], "seed": [[], "int64"]}, "outputs": outputs},
    }
    assert seen["shapes"]["encode"] == {"mean": [2, LATENT], "log_variance": [2, LATENT]}
    assert seen["shapes"]["sample"] == {"images": [3, SIZE, SIZE, 3], "images_uint8": [3, SIZE, SIZE, 3]}
    assert seen["shapes"]["reconstruct"]["images"] == [2, SIZE, SIZE, 3]
    assert seen["sample is seeded"]


def test_resume_restores_the_noise_generator(run):
    # The checkpoint holds the generator's state after 4 steps of one draw each, not the seed's
    # initial [0, 0]: a resumed run draws new noise instead of its first steps' again.
    restored = export.load_trained(run["config"].workdir).model  # weights only: an export needs no noise state
    directory = os.path.join(run["config"].workdir, "checkpoints")
    checkpoints.restore_latest_good(training.checkpointer(restored, directory)[0], directory)
    assert restored.seed_generator.state.numpy().tolist() == [0, 4]


def test_evaluation_draws_seeded_noise_and_leaves_the_training_noise_alone():
    model = _vae()
    model.compile(optimizer=keras.optimizers.Adam())
    images = tf.data.Dataset.from_tensors({"images": _images([0.5, -0.5, 0.0, 1.0])})
    state = model.seed_generator.state.numpy().tolist()
    first, second = (model.evaluate(images, verbose=0, return_dict=True) for _ in range(2))
    assert model.seed_generator.state.numpy().tolist() == state
    assert first == second


def test_bits_per_dim_only_for_the_discretised_logistic(tmp_path):
    from zoo import metrics
    from zoo.datasets import get_source

    config = zoo.Config(model="vae", dataset="shapes", likelihood="bernoulli", batch_size=250,
                        workdir=str(tmp_path), latent_dim=LATENT, base_filters=8)
    model = _vae("bernoulli", channels=3)
    model.compile(optimizer=keras.optimizers.Adam())
    results = metrics.test_likelihood(metrics.Scoring(config, get_source(config), model))
    assert results["likelihood"] == "bernoulli" and results["test_split"] == "test"
    assert results["test_negative_elbo_nats"] > 0
    assert not [name for name in results if "bits" in name]


def test_a_step_the_loss_scaler_skips_still_counts_as_a_step():
    model = _vae()
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3), initial_scale=float("inf")))
    model.train_step({"images": tf.random.stateless_uniform([8, SIZE, SIZE, 1], [0, 2], -1.0, 1.0)})
    assert int(model.optimizer.iterations) == 0  # the scaler did skip it
    assert int(model.step) == 1


def test_a_kill_between_eval_json_and_its_metrics_line_is_made_good_by_the_rerun(run):
    metrics_path = f"{run['config'].workdir}/metrics.jsonl"
    with open(metrics_path) as f:
        lines = f.readlines()
    with open(metrics_path, "w") as f:
        f.writelines(lines[:-1])  # eval.json written, its line not
    zoo.train(run["config"])
    with open(metrics_path) as f:
        assert f.readlines() == lines


def test_a_finished_run_run_again_logs_and_scores_nothing_more(run):
    metrics_path = f"{run['config'].workdir}/metrics.jsonl"
    with open(metrics_path) as f:
        before = f.read()
    model = zoo.train(run["config"])
    assert int(model.step) == 4
    with open(metrics_path) as f:
        assert f.read() == before
