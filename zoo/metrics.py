"""Evaluations on the test split after training, as plug-ins a model names in `evaluations`.

Each plug-in takes (model, config, source) and returns flat name -> number results;
training prints them and writes them to eval.json and metrics.jsonl.
"""
import logging
import math

import tensorflow as tf

from zoo.datasets import make_dataset
from zoo.registry import Registry

METRICS = Registry("metric")


def evaluate(model, config, source):
    """The results of every evaluation the model names, merged."""
    results = {}
    for name in model.evaluations:
        results.update(METRICS.get(name)(model, config, source))
    return results


def test_split(source, config):
    """Every test example exactly once, in batches of batch_size (the last one may be smaller)."""
    dataset, num_examples = make_dataset(source, config, source.test_split, batch_size=1, training=False)
    return dataset.unbatch().batch(config.batch_size), num_examples


@METRICS.register("test_likelihood")
def test_likelihood(model, config, source):
    """The VAE's test-set negative ELBO, and with --iw_samples=k its importance-weighted -log p(x).

    Both in nats per image and in bits per dimension, nats / (H * W * C * ln 2). The
    negative ELBO is the bound itself (beta = 1) whatever --kl_weight trained with. Under the
    Bernoulli likelihood the pixels are grey levels in [0, 1], not binarised: that
    likelihood is no distribution over the 256 pixel values, so its numbers compare
    neither with the discretised logistic's nor with published binarised-MNIST results.
    """
    dataset, num_examples = test_split(source, config)
    terms = model.evaluate(dataset, verbose=0, return_dict=True)
    to_bits_per_dim = 1.0 / (math.log(2) * math.prod(model.image_shape))
    negative_elbo = terms["reconstruction"] + terms["kl"]
    results = {"test_images": num_examples, "test_negative_elbo_nats": negative_elbo,
               "test_negative_elbo_bits_per_dim": negative_elbo * to_bits_per_dim,
               "test_reconstruction_nats": terms["reconstruction"], "test_kl_nats": terms["kl"]}
    logging.info("Test negative ELBO: %.2f nats/image, %.4f bits/dim (%s likelihood, %d images)",
                 negative_elbo, negative_elbo * to_bits_per_dim, model.likelihood, num_examples)
    if config.iw_samples:
        nll = _mean_importance_weighted_nll(model, dataset, config.iw_samples, config.seed)
        results.update({"test_iw_samples": config.iw_samples, "test_iw_nll_nats": nll,
                        "test_iw_nll_bits_per_dim": nll * to_bits_per_dim})
        logging.info("Test -log p(x), importance-weighted with %d samples: %.2f nats/image, %.4f bits/dim",
                     config.iw_samples, nll, nll * to_bits_per_dim)
    return results


def _mean_importance_weighted_nll(model, dataset, samples, seed):
    """The mean over the test set; each batch draws its own seeded noise, so reruns agree."""
    estimate = tf.function(model.importance_weighted_nll, reduce_retracing=True)
    total, count = 0.0, 0
    for index, batch in enumerate(dataset):
        nll = estimate(batch["images"], samples, tf.constant([seed, index]))
        total, count = total + float(tf.reduce_sum(nll)), count + int(nll.shape[0])
    return total / count
