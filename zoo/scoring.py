"""Scoring generated images: samplers, embeddings, records, and the evaluation during training.

Generated images are drawn through a model's `sample` signature (the function its export
serves, or the export's own), embedded by a feature network (zoo.features) beside real
images, and scored by the plug-ins of zoo.metrics. zoo.evaluate is the command line over
these; `PeriodicEvaluation` is the callback training uses.
"""
import dataclasses
import json
import logging
import math
import os
import sys
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw
from tqdm import tqdm

from zoo import features, metrics
from zoo.config import EVAL_EVERY_DEFAULT
from zoo.errors import UsageError
from zoo.files import write_text, written_aside

BEST_DIR = os.path.join("checkpoints", "best")  # in the work directory
SAMPLE_BATCH = 250
TRAINING_METRICS = ("fid", "kid")  # during training; plus class_accuracy for conditional models


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A model's `sample` signature: draw(count or labels, seed) -> {"images_uint8": ...}."""

    draw: Callable
    num_classes: int  # 0: unconditional; else draw takes int32 labels [n]


def model_sampler(model):
    """The Keras model's own `sample` endpoint, the function its export serves."""
    function, signature = model.serving_endpoints()["sample"]
    conditional = signature[0].name == "labels"  # (labels, seed) for the cGAN, (num_images, seed) for the others
    return Sampler(tf.function(function, input_signature=signature), model.num_classes if conditional else 0)


def export_sampler(path, num_classes):
    """The `sample` signature of a SavedModel, loaded with TensorFlow alone (no project code)."""
    try:
        signature = tf.saved_model.load(path).signatures["sample"]
    except (OSError, KeyError) as error:
        raise UsageError(f"--export={path} is no SavedModel with a `sample` signature ({type(error).__name__}): "
                         f"pass a version folder export.py wrote, e.g. exports/dcgan/1") from None
    if "labels" in signature.structured_input_signature[1]:
        if not num_classes:
            raise UsageError(f"{path} generates for class labels, which its --dataset has none of")
        return Sampler(lambda labels, seed: signature(labels=labels, seed=seed), num_classes)
    return Sampler(lambda count, seed: signature(num_images=count, seed=seed), 0)


def generated_images(sampler, num, seed):
    """(uint8 images, labels or None) batches, `num` images in all; labels cycle through the classes
    so every class has its share. Batch b draws with seed `seed + b`: the same images every call."""
    for batch, start in enumerate(range(0, num, SAMPLE_BATCH)):
        count = min(SAMPLE_BATCH, num - start)
        seed_b = tf.constant(seed + batch, tf.int64)
        if sampler.num_classes:
            labels = tf.range(start, start + count, dtype=tf.int32) % sampler.num_classes
            yield sampler.draw(labels, seed_b)["images_uint8"], labels.numpy()
        else:
            yield sampler.draw(tf.constant(count, tf.int32), seed_b)["images_uint8"], None


def real_images(source, config, split, limit=None):
    """(uint8 images, labels or None) batches of `split` (its first `limit` images), as the dataset stores them."""
    dataset, count = metrics.every_example(source, config, split, with_labels=bool(source.num_classes))
    if limit:
        dataset, count = dataset.unbatch().take(limit).batch(config.batch_size), min(limit, count)

    def batches():
        for batch in dataset:
            as_uint8 = tf.cast(tf.round((batch["images"] + 1.0) * 127.5), tf.uint8)
            yield as_uint8, batch["labels"].numpy() if "labels" in batch else None

    return batches(), count


def embed(network, batches, total, description, progress=True):
    """metrics.Embedded of the images `batches` yields, with a progress bar."""
    parts = {"features": [], "predictions": [], "labels": []}
    with tqdm(total=total, desc=description, unit="img", disable=not progress, file=sys.stderr) as bar:
        for images, labels in batches:
            found, predicted = network.embed(images)
            parts["features"].append(found)
            parts["predictions"].append(predicted)
            parts["labels"].append(labels)
            bar.update(len(found))
    joined = {name: None if not values or values[0] is None else np.concatenate(values)
              for name, values in parts.items()}
    return metrics.Embedded(joined["features"].astype(np.float64), joined["predictions"], joined["labels"])


def score(network, config, source, generated, real, names, model=None):
    """The record of one evaluation: the feature network's, the split used, every plug-in's results."""
    scoring = metrics.Scoring(config, source, model, real, generated, network.record)
    names = [*names, *(["class_accuracy"] if generated.labels is not None and real.labels is not None else [])]
    return {**network.record, "real_split": source.test_split, "real_images": len(real.features),
            "generated_images": len(generated.features), **metrics.run(names, scoring)}


def evaluate_model(config, source, sampler, num_samples, seed=0, model=None, progress=True):
    """Every score of `num_samples` images from `sampler`; `model` adds its own evaluations (the VAE's likelihood)."""
    network = features.get(config, source)
    batches, count = real_images(source, config, source.test_split)
    real = embed(network, batches, count, f"real {source.test_split} images", progress)
    generated = embed(network, generated_images(sampler, num_samples, seed), num_samples, "generated images",
                      progress)
    record = score(network, config, source, generated, real, metrics.SAMPLE_METRICS, model)
    if model is not None and model.evaluations:
        record.update(metrics.run(model.evaluations, metrics.Scoring(config, source, model)))
    return record


def evaluate_real(config, source, num_samples, progress=True):
    """The floor a perfect generator reaches: the train split's first `num_samples` images scored
    as if generated, against the test split, with the same features."""
    network = features.get(config, source)
    batches, count = real_images(source, config, source.test_split)
    real = embed(network, batches, count, f"real {source.test_split} images", progress)
    batches, count = real_images(source, config, source.train_split, num_samples)
    train = embed(network, batches, count, f"real {source.train_split} images", progress)
    return {"generated_split": source.train_split, **score(network, config, source, train, real,
                                                            metrics.SAMPLE_METRICS)}


def write_record(record, directory):
    """eval.json, written aside and renamed so a kill leaves the previous one whole; and one line of metrics.jsonl."""
    os.makedirs(directory, exist_ok=True)
    write_text(os.path.join(directory, "eval.json"), json.dumps(record, indent=2))
    with open(os.path.join(directory, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def training_callbacks(config, source, workdir, agree=lambda better: better, stopping=lambda: False):
    """[PeriodicEvaluation] when --eval_every asks for it (or by default, for a dataset the domain
    features can score); [] when off. `agree`, `stopping`: see PeriodicEvaluation."""
    scorable = config.features == "inception" or bool(source.num_classes or source.attributes)
    every = (EVAL_EVERY_DEFAULT if scorable else 0) if config.eval_every is None else config.eval_every
    if not every:
        return []
    if not scorable:
        raise UsageError(f"--eval_every: dataset {source.name!r} has no labels or attributes for the domain feature "
                         f"network: pass --features=inception (see --inception), or --eval_every=0")
    return [PeriodicEvaluation(config, source, every, workdir, agree, stopping)]


class _Abandoned(Exception):
    """A signal asked training to stop during an evaluation."""


class PeriodicEvaluation(keras.callbacks.Callback):
    """Every `every` steps: FID, KID (and class accuracy) of --eval_samples images with seeds fixed for the
    whole run, logged with the step and elapsed seconds to metrics.jsonl and TensorBoard; the checkpoint
    with the lowest FID is kept in <workdir>/checkpoints/best. At the end, quality.png plots the scores.

    `agree(better) -> bool`: in a multi-worker run every worker scores and must decide alike whether
    to save (the save's collectives would wait forever for a worker that did not): the chief's
    verdict counts for all (zoo.training.chief_decides).

    `stopping() -> bool`: whether a signal asked training to stop; an evaluation under way is then
    abandoned between two batches, so that the save and exit wait for one batch, not the whole sample.
    """

    def __init__(self, config, source, every, workdir, agree=lambda better: better, stopping=lambda: False):
        super().__init__()
        self.config, self.source, self.every, self.workdir = config, source, every, workdir
        self.agree, self.stopping = agree, stopping
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self.best_dir = os.path.join(workdir, BEST_DIR)
        self.network = self.real = None  # made at the first evaluation: the domain network may need training

    def on_train_begin(self, logs=None):
        self.start = time.time() - _elapsed_so_far(self.metrics_path)  # a resumed run continues its clock
        self.sampler = model_sampler(self.model)
        checkpoint = tf.train.Checkpoint(model=self.model, noise_state=self.model.seed_generator.state)
        self.best = tf.train.CheckpointManager(checkpoint, self.best_dir, max_to_keep=1)
        self.last_step = self.resumed_at = int(self.model.step.numpy())
        self.best_fid = None  # read at the first evaluation, which knows the feature network
        self.writer = tf.summary.create_file_writer(os.path.join(self.workdir, "tensorboard", "eval"))

    def on_train_batch_end(self, batch, logs=None):
        # fit calls this once per execution of --steps_per_execution steps: evaluate when the step
        # crossed a multiple of `every`, not only when it landed on one. A stop (SIGTERM) saves first.
        step, last = int(self.model.step.numpy()), self.last_step
        self.last_step = step
        if step // self.every > last // self.every and not self.model.stop_training:
            self.evaluate(step)

    def evaluate(self, step):
        began = time.time()
        try:
            if self.network is None:
                self.network = features.get(self.config, self.source)
            if self.real is None:
                batches, count = real_images(self.source, self.config, self.source.test_split)
                self.real = embed(self.network, self._unless_stopping(batches), count, "real test images",
                                  progress=False)
            generated = embed(self.network, self._unless_stopping(
                generated_images(self.sampler, self.config.eval_samples, self.config.seed)),
                self.config.eval_samples, "generated", progress=False)
        except _Abandoned:
            logging.warning("Step %d: evaluation abandoned, training is stopping", step)
            self.model.stop_training = True  # StopOnSignal saw this execution before the signal came
            return
        record = {"step": step, "elapsed_seconds": round(time.time() - self.start, 1),
                  **score(self.network, self.config, self.source, generated, self.real, TRAINING_METRICS),
                  "eval_seconds": round(time.time() - began, 1)}  # its cost, beside the training time
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        with self.writer.as_default():
            for name in ("fid", "kid", "class_accuracy"):
                if name in record:
                    tf.summary.scalar(f"eval/{name}", record[name], step=step)
        self.writer.flush()
        logging.info("Step %d: FID %.3f, KID %.5f (%s features, %d samples)", step, record["fid"], record["kid"],
                     record["features"], self.config.eval_samples)
        self.keep_if_best(step, record["fid"], record["feature_sha256"])

    def _unless_stopping(self, batches):
        for batch in batches:
            if self.stopping():
                raise _Abandoned
            yield batch

    def keep_if_best(self, step, fid, feature_sha256):
        if self.best_fid is None:
            self.best_fid = _best_fid(self.best_dir, self.resumed_at, feature_sha256, self.metrics_path)
        if self.agree(fid < self.best_fid):
            self.best_fid = fid
            self.best.save(checkpoint_number=step)
            write_text(os.path.join(self.best_dir, "best.json"),
                       json.dumps({"step": step, "fid": fid, "feature_sha256": feature_sha256}))

    def on_train_end(self, logs=None):
        draw_quality_curve(self.metrics_path, os.path.join(self.workdir, "quality.png"))


def _elapsed_so_far(metrics_path):
    """Seconds a resumed run has trained before: its epochs' (a signal's stop logs its part of one),
    or its last evaluation's clock if later (a kill mid-epoch logs nothing after it). The epochs
    count the steps between the last evaluation and the checkpoint, which the evaluation's clock missed."""
    records = _records(metrics_path)
    epochs = sum(record["seconds"] for record in records if "epoch" in record and "seconds" in record)
    return max([epochs] + [record["elapsed_seconds"] for record in records if "elapsed_seconds" in record])


def _records(metrics_path):
    if not os.path.isfile(metrics_path):
        return []
    with open(metrics_path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _best_fid(best_dir, step, feature_sha256, metrics_path):
    """The FID to beat: the kept best checkpoint's, or inf where it cannot be trusted. best.json must name
    the checkpoint that is there (a kill between the two writes leaves them apart) at a step this run has
    trained (a resume from an earlier checkpoint trains that step again), scored by the same feature
    network (another cache or --inception file gives FIDs of another scale; a best.json from before it
    named its network: the one metrics.jsonl names for that evaluation)."""
    path = os.path.join(best_dir, "best.json")
    kept = tf.train.latest_checkpoint(best_dir)
    if not (os.path.isfile(path) and kept):
        return math.inf
    with open(path) as f:
        record = json.load(f)
    scored_by = record.get("feature_sha256") or next(
        (r.get("feature_sha256") for r in _records(metrics_path) if r.get("step") == record["step"] and "fid" in r),
        None)
    if (kept != os.path.join(best_dir, f"ckpt-{record['step']}") or record["step"] > step
            or scored_by != feature_sha256):
        return math.inf
    return record["fid"]


def draw_quality_curve(metrics_path, png_path, width=480, height=200):
    """FID (and class accuracy, for conditional models) against elapsed minutes, one panel each,
    from the evaluations in metrics.jsonl; nothing when there are none."""
    records = [r for r in _records(metrics_path) if "elapsed_seconds" in r and "fid" in r]
    if not records:
        return
    panels = [name for name in ("fid", "class_accuracy") if name in records[-1]]
    picture = Image.new("RGB", (width, height * len(panels)), "white")
    draw = ImageDraw.Draw(picture)
    minutes = [r["elapsed_seconds"] / 60 for r in records]
    left, right, top, bottom = 60, width - 15, 20, height - 30
    for index, name in enumerate(panels):
        values = [r[name] for r in records]
        low, high = min(values), max(values)
        high = high if high > low else low + 1.0
        span = max(minutes) if max(minutes) > 0 else 1.0
        offset = index * height
        x = lambda m: left + (right - left) * m / span  # noqa: E731
        y = lambda v: offset + bottom - (bottom - top) * (v - low) / (high - low)  # noqa: E731
        draw.rectangle([left, offset + top, right, offset + bottom], outline="black")
        draw.text((left, offset + 4), f"{name} ({records[-1]['features']} features)", fill="black")
        draw.text((4, offset + top), f"{high:.4g}", fill="black")
        draw.text((4, offset + bottom - 10), f"{low:.4g}", fill="black")
        draw.text((left, offset + bottom + 5), "0 min", fill="black")
        draw.text((right - 60, offset + bottom + 5), f"{span:.1f} min", fill="black")
        points = [(x(m), y(v)) for m, v in zip(minutes, values)]
        if len(points) > 1:
            draw.line(points, fill="blue", width=2)
        for px, py in points:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill="blue")
    with written_aside(png_path) as partial:
        picture.save(partial)


