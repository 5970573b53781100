"""tf.data input pipelines over tfds builders.

Every pipeline yields batches of {"images": float32 [B, S, S, C] in [-1, 1]}
plus "labels" (int32 [B]) when the model asks for them.
"""
import dataclasses
import logging
from typing import Callable, Optional

import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.datasets import shapes  # registers the builder with tfds
from zoo.errors import DatasetUnavailableError, UsageError
from zoo.registry import DATASETS

CACHE_LIMIT_BYTES = 2 << 30  # cache decoded images in memory below this size


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where a dataset's examples come from and how to turn one into an image and label."""

    name: str
    channels: int
    num_classes: int  # 0: unlabelled
    prepare: Callable[[], tfds.core.DatasetBuilder]  # returns a prepared builder
    image_key: str = "image"
    label_key: Optional[str] = "label"
    crop_size: Optional[int] = None  # centre crop side; None: the largest centred square
    train_split: str = "train"
    test_split: str = "test"
    class_names: tuple = ()


def tfds_prepare(name, config, help_text=""):
    """Builder for tfds dataset `name`, downloaded and prepared if it is not yet."""

    def prepare():
        builder = tfds.builder(name, data_dir=config.data_dir)
        if not builder.is_prepared():
            logging.info("Preparing tfds dataset %s in %s (a download if tfds has no copy)",
                         name, builder.data_dir)
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=config.manual_dir))
        except Exception as error:  # tfds raises whatever its downloader hit
            first_line = (str(error).splitlines() or [""])[0][:300]
            raise DatasetUnavailableError(
                f"dataset {name!r} is not prepared in {builder.data_dir} and tfds could not "
                f"download or build it ({type(error).__name__}: {first_line}). {help_text}".strip()
            ) from error
        return builder

    return prepare


def parse_dataset_name(name):
    """'folder:/data/faces' -> ('folder', '/data/faces'); 'mnist' -> ('mnist', None)."""
    kind, _, argument = name.partition(":")
    DATASETS.get(kind)
    return kind, argument or None


def get_source(config):
    kind, argument = parse_dataset_name(config.dataset)
    return DATASETS.get(kind)(config, argument)


def _no_argument(kind, argument):
    if argument is not None:
        raise UsageError(f"dataset {kind!r} takes no ':' argument, got {argument!r}")


def register_tfds(kind, channels, num_classes, help_text="", **source_fields):
    """Registers a tfds dataset under its tfds name."""

    @DATASETS.register(kind)
    def make(config, argument):
        _no_argument(kind, argument)
        return DataSource(name=kind, channels=channels, num_classes=num_classes,
                          prepare=tfds_prepare(kind, config, help_text), **source_fields)

    return make


register_tfds("mnist", channels=1, num_classes=10)
register_tfds("fashion_mnist", channels=1, num_classes=10)
register_tfds("cifar10", channels=3, num_classes=10)
register_tfds("shapes", channels=3, num_classes=len(shapes.CLASS_NAMES))
# The DCGAN paper's CelebA preprocessing: the central 108x108 of the aligned 178x218 faces.
register_tfds("celeb_a", channels=3, num_classes=0, crop_size=108, label_key=None,
              test_split="test",
              help_text="CelebA's Google Drive download is often refused: see the README's "
                        "Datasets section for training on files you already have.")


def _crop_and_resize(image, size, crop_size):
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1]) if crop_size is None else crop_size
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    image = image[top:top + side, left:left + side]
    resized = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def make_dataset(source, config, split, *, batch_size, training, with_labels=False):
    """Batches of one split, repeated and shuffled when `training`."""
    if with_labels and not source.num_classes:
        raise UsageError(f"dataset {source.name!r} has no labels for this model to condition on")
    builder = source.prepare()
    dataset = builder.as_dataset(split=split, shuffle_files=training,
                                 read_config=tfds.ReadConfig(shuffle_seed=config.seed))

    def decode(example):
        image = _crop_and_resize(example[source.image_key], config.image_size, source.crop_size)
        features = {"images": image}
        if with_labels:
            features["labels"] = tf.cast(example[source.label_key], tf.int32)
        return features

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    num_examples = builder.info.splits[split].num_examples
    if num_examples * config.image_size ** 2 * source.channels <= CACHE_LIMIT_BYTES:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(min(num_examples, 10_000) or 1_000, seed=config.seed).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(_to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE), num_examples


def _to_unit_range(features):
    images = tf.cast(features["images"], tf.float32) / 127.5 - 1.0
    return {**features, "images": images}
