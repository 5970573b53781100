"""Scores of a trained model, as plug-ins in one registry.

A plug-in takes a `Scoring` (what there is to score: the run's config and data source,
the Keras model when there is one, and the feature-network embeddings of real test and of
generated images) and returns flat name -> number results. Training runs the plug-ins its
model names in `evaluations` at the end; `python -m zoo.evaluate` runs the sample-quality
plug-ins as well. The distances themselves are plain numpy functions of two feature sets.
"""
import dataclasses
import logging
import math
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from zoo.datasets import make_dataset
from zoo.registry import Registry

METRICS = Registry("metric")
SAMPLE_METRICS = ("fid", "kid", "precision_recall")  # every model's; plus class_accuracy for conditional ones
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # the KID paper's (Binkowski et al., 2018) and TF-GAN's
PR_NEIGHBOURS = 3  # Kynkaanniemi et al., 2019


@dataclasses.dataclass(frozen=True)
class Embedded:
    """Images as a feature network sees them: features [N, D], the network's predicted classes
    (or attribute bits) [N, ...] when it is a classifier, and the labels the images should have."""

    features: np.ndarray
    predictions: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True)
class Scoring:
    """What the plug-ins score. `model` is None for a SavedModel; `real`/`generated` None when
    only the model's own evaluations (the VAE's likelihood) run; `network` the feature network's
    record (its name, file, accuracy)."""

    config: Any
    source: Any
    model: Any = None
    real: Optional[Embedded] = None
    generated: Optional[Embedded] = None
    network: Optional[dict] = None


def evaluate(model, config, source):
    """The results of every evaluation the model names, merged (the end of training)."""
    return run(model.evaluations, Scoring(config, source, model))


def run(names, scoring):
    results = {}
    for name in names:
        results.update(METRICS.get(name)(scoring))
    return results


# The distances, in float64: features of real images `x` [N, D] against generated ones `y` [M, D].

def frechet_distance(x, y):
    """||mu_x - mu_y||^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2)) between Gaussians fitted to x and y.

    tr (S_x S_y)^(1/2) is the sum of the square roots of the eigenvalues of the symmetric
    S_x^(1/2) S_y S_x^(1/2): real and non-negative, where a general sqrtm of S_x S_y can turn
    complex or blow up for the singular covariances of few samples or dead features.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    root_x = _psd_sqrt(cov_x)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_x @ cov_y @ root_x), 0.0, None)).sum()
    return float(np.sum((mean_x - mean_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2.0 * cross)


def _psd_sqrt(matrix):
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def kernel_distance(x, y, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=0):
    """KID: the unbiased MMD^2 with kernel k(a, b) = (a.b / D + 1)^3, on `subsets` random subsets
    of min(subset_size, N, M) rows of each; returns (mean, standard deviation) over the subsets."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    estimates = [_unbiased_mmd2(x[rng.choice(len(x), size, replace=False)],
                                y[rng.choice(len(y), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(estimates)), float(np.std(estimates))


def _cubic_kernel(a, b):
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    return k * k * k  # five times faster than ** 3


def _unbiased_mmd2(x, y):
    m = len(x)
    k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return off_diagonal - 2.0 * k_xy.mean()


def precision_recall(x, y, k=PR_NEIGHBOURS):
    """Improved precision and recall (Kynkaanniemi et al., 2019).

    Each set's manifold is the union of balls around its points, of radius the distance to
    the point's k-th nearest neighbour in the set. Precision: the share of generated points
    inside the real manifold (fidelity); recall: the share of real points inside the
    generated one (diversity).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    radii_x, radii_y = _kth_neighbour_distance(x, k), _kth_neighbour_distance(y, k)
    return _share_inside(y, x, radii_x), _share_inside(x, y, radii_y)


def _squared_distances(a, b):
    return np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0)


def _row_blocks(n, block=1024):
    return (slice(start, min(start + block, n)) for start in range(0, n, block))


def _kth_neighbour_distance(points, k):
    """Squared distance of each point to its k-th nearest other point (itself is the 0th)."""
    return np.concatenate([np.partition(_squared_distances(points[rows], points), k, axis=1)[:, k]
                           for rows in _row_blocks(len(points))])


def _share_inside(queries, centres, squared_radii):
    inside = [(_squared_distances(queries[rows], centres) <= squared_radii[None, :]).any(axis=1)
              for rows in _row_blocks(len(queries))]
    return float(np.concatenate(inside).mean())


# The plug-ins.

@METRICS.register("fid")
def fid(scoring):
    """Frechet distance between the real test images' features and the generated ones'."""
    return {"fid": frechet_distance(scoring.real.features, scoring.generated.features)}


@METRICS.register("kid")
def kid(scoring):
    mean, std = kernel_distance(scoring.real.features, scoring.generated.features, seed=scoring.config.seed)
    return {"kid": mean, "kid_std": std}


@METRICS.register("precision_recall")
def improved_precision_recall(scoring):
    precision, recall = precision_recall(scoring.real.features, scoring.generated.features)
    return {"precision": precision, "recall": recall}


@METRICS.register("class_accuracy")
def class_accuracy(scoring):
    """The share of images generated for label y that the domain classifier assigns to y, beside
    the same classifier's accuracy on the real test images (what a perfect generator would get)."""
    generated, real = scoring.generated, scoring.real
    if generated.predictions is None:
        logging.info("class_accuracy needs the domain features' classifier: not measured")
        return {}
    return {"class_accuracy": float(np.mean(generated.predictions == generated.labels)),
            "class_accuracy_real": float(np.mean(real.predictions == real.labels))}


def every_example(source, config, split, with_labels=False):
    """Every example of `split` exactly once, in batches of batch_size (the last one may be smaller)."""
    dataset, num_examples = make_dataset(source, config, split, batch_size=1, training=False,
                                         with_labels=with_labels)
    return dataset.unbatch().batch(config.batch_size), num_examples


@METRICS.register("test_likelihood")
def test_likelihood(scoring):
    """The VAE's test-set negative ELBO, and with --iw_samples=k its importance-weighted -log p(x).

    In nats per image. The negative ELBO is the bound itself (beta = 1) whatever --kl_weight
    trained with. Bits per dimension, nats / (H * W * C * ln 2), only for the discretised
    logistic, a distribution over the 256 pixel values: the Bernoulli likelihood here takes
    grey levels in [0, 1], not binarised pixels, so it is no such distribution and its numbers
    compare neither with the logistic's nor with published binarised-MNIST results.
    """
    model, config, source = scoring.model, scoring.config, scoring.source
    dataset, num_examples = every_example(source, config, source.test_split)
    terms = model.evaluate(dataset, verbose=0, return_dict=True)
    negative_elbo = terms["reconstruction"] + terms["kl"]
    results = {"test_split": source.test_split, "test_images": num_examples, "likelihood": model.likelihood,
               "test_negative_elbo_nats": negative_elbo,
               "test_reconstruction_nats": terms["reconstruction"], "test_kl_nats": terms["kl"]}
    if config.iw_samples:
        results.update({"test_iw_samples": config.iw_samples,
                        "test_iw_nll_nats": _mean_importance_weighted_nll(model, dataset, config.iw_samples,
                                                                          config.seed)})
    if model.likelihood == "logistic":
        to_bits_per_dim = 1.0 / (math.log(2) * math.prod(model.image_shape))
        results.update({f"{name[:-len('_nats')]}_bits_per_dim": results[name] * to_bits_per_dim
                        for name in ("test_negative_elbo_nats", "test_iw_nll_nats") if name in results})
    logging.info("Test split %r, %s likelihood: %s", source.test_split, model.likelihood,
                 ", ".join(f"{name} {value:.4g}" for name, value in results.items() if isinstance(value, float)))
    return results


def _mean_importance_weighted_nll(model, dataset, samples, seed):
    """The mean over the test set; each batch draws its own seeded noise, so reruns agree."""
    estimate = tf.function(model.importance_weighted_nll, reduce_retracing=True)
    total, count = 0.0, 0
    for index, batch in enumerate(dataset):
        nll = estimate(batch["images"], samples, tf.constant([seed, index]))
        total, count = total + float(tf.reduce_sum(nll)), count + int(nll.shape[0])
    return total / count
