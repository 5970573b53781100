"""Specification of the IDX (MNIST-format) reader and builder."""
import gzip
import logging
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import zoo
from zoo.datasets import get_source, idx, make_dataset, pipelines
from zoo.errors import DatasetUnavailableError

FASHION_MNIST = pipelines.DEBIAN_FASHION_MNIST


def idx_bytes(magic, array):
    """An IDX file's bytes: magic number, one big-endian uint32 per dimension, then the data."""
    header = magic.to_bytes(4, "big") + b"".join(side.to_bytes(4, "big") for side in array.shape)
    return header + np.asarray(array, np.uint8).tobytes()


def write_idx_folder(folder, num_train=12, num_test=4, gz=False, seed=0):
    """The four IDX files of a tiny MNIST-like set; returns {split: (images, labels)}."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", num_train), ("test", num_test)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        images_name, labels_name = idx.SPLIT_FILES[split]
        write(folder, images_name, idx_bytes(idx.IMAGES_MAGIC, images), gz)
        write(folder, labels_name, idx_bytes(idx.LABELS_MAGIC, labels), gz)
        arrays[split] = images, labels
    return arrays


def write(folder, name, data, gz=False):
    path = os.path.join(folder, name + (".gz" if gz else ""))
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_reads_both_splits_of_plain_and_gzip_files(tmp_path, gz):
    arrays = write_idx_folder(tmp_path, gz=gz)
    for split, (images, labels) in arrays.items():
        read_images, read_labels = idx.read_split(tmp_path, split)
        np.testing.assert_array_equal(read_images, images)
        np.testing.assert_array_equal(read_labels, labels)


def test_content_decides_gzip_not_the_name(tmp_path):
    # Browsers unpack downloads but keep the .gz name.
    images = np.full((3, 28, 28), 7, np.uint8)
    write(tmp_path, "t10k-images-idx3-ubyte.gz", idx_bytes(idx.IMAGES_MAGIC, images))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz", idx.IMAGES_MAGIC), images)


def test_a_missing_file_is_named(tmp_path):
    write_idx_folder(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetUnavailableError, match="has no t10k-labels-idx1-ubyte"):
        idx.find_files(tmp_path)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetUnavailableError, match=f"{tmp_path / 'nowhere'} is not a folder"):
        idx.find_files(tmp_path / "nowhere")


def _corrupt(tmp_path, name, data):
    write_idx_folder(tmp_path)
    return write(tmp_path, name, data)


def _error(tmp_path, split="train"):
    with pytest.raises(DatasetUnavailableError) as error:
        idx.read_split(tmp_path, split)
    return str(error.value)


def test_truncated_images_file_is_named(tmp_path):
    good = idx_bytes(idx.IMAGES_MAGIC, np.zeros((12, 28, 28), np.uint8))
    path = _corrupt(tmp_path, "train-images-idx3-ubyte", good[:-100])
    message = _error(tmp_path)
    assert str(path) in message and "truncated" in message and "12x28x28" in message


def test_file_shorter_than_its_header_is_named(tmp_path):
    path = _corrupt(tmp_path, "train-labels-idx1-ubyte", idx.LABELS_MAGIC.to_bytes(4, "big") + b"\0\0")
    message = _error(tmp_path)
    assert str(path) in message and "truncated" in message


def test_trailing_bytes_are_an_error(tmp_path):
    extra = idx_bytes(idx.LABELS_MAGIC, np.zeros(12, np.uint8)) + b"junk"
    path = _corrupt(tmp_path, "train-labels-idx1-ubyte", extra)
    assert str(path) in _error(tmp_path)


def test_labels_file_in_place_of_images_is_named_by_its_magic_number(tmp_path):
    path = _corrupt(tmp_path, "train-images-idx3-ubyte", idx_bytes(idx.LABELS_MAGIC, np.zeros(12, np.uint8)))
    message = _error(tmp_path)
    assert str(path) in message
    assert "0x00000801 (IDX labels)" in message and "expected 0x00000803 (IDX images)" in message


def test_count_mismatch_names_both_files(tmp_path):
    labels = _corrupt(tmp_path, "t10k-labels-idx1-ubyte", idx_bytes(idx.LABELS_MAGIC, np.zeros(5, np.uint8)))
    message = _error(tmp_path, "test")
    assert str(labels) in message and str(tmp_path / "t10k-images-idx3-ubyte") in message
    assert "4 images" in message and "5 labels" in message


def test_images_of_another_size_are_refused(tmp_path):
    path = _corrupt(tmp_path, "train-images-idx3-ubyte", idx_bytes(idx.IMAGES_MAGIC, np.zeros((12, 32, 32))))
    message = _error(tmp_path)
    assert str(path) in message and "32x32" in message


def test_labels_beyond_ten_classes_are_refused(tmp_path):
    path = _corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(idx.LABELS_MAGIC, np.full(12, 46)))
    message = _error(tmp_path)
    assert str(path) in message and "label 46" in message


def test_damaged_gzip_file_is_named(tmp_path):
    write_idx_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    message = _error(tmp_path)
    assert str(path) in message and "gzip" in message


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST),
                    reason=f"{FASHION_MNIST} is absent: apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_files_hold_60000_and_10000_labelled_images():
    for split, count in (("train", 60000), ("test", 10000)):
        images, labels = idx.read_split(FASHION_MNIST, split)
        assert images.shape == (count, 28, 28) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == [count // 10] * 10
        assert 50 < images.mean() < 100  # garments on black, not zeros or noise


def test_builder_yields_the_files_images_and_labels(tmp_path):
    arrays = write_idx_folder(tmp_path / "idx", gz=True)
    config = zoo.Config(dataset="mnist", data_dir=str(tmp_path / "tfds"))
    builder = pipelines.prepare_local("mnist", idx.IdxImages, tmp_path / "idx",
                                      list(idx.find_files(tmp_path / "idx").values()), config, "test files")
    assert builder.info.features["image"].shape == (28, 28, 1)
    assert builder.info.features["label"].num_classes == 10
    for split, (images, labels) in arrays.items():
        examples = builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator()
        got = {ex["image"].tobytes(): int(ex["label"]) for ex in examples}
        assert got == {image[..., None].tobytes(): int(label) for image, label in zip(images, labels)}


# Where --dataset=mnist and --dataset=fashion_mnist take their data from.

@pytest.fixture
def download_fails(monkeypatch):
    """tfds's download as it fails offline, without the minutes of DNS retries; records the attempts."""
    attempts = []

    def fail(builder, download_config):
        attempts.append(builder.name)
        raise ConnectionError("Failed to resolve 'storage.googleapis.com'")

    for name in ("mnist", "fashion_mnist"):
        monkeypatch.setattr(tfds.builder_cls(name), "download_and_prepare", fail)
    return attempts


def debian_package(monkeypatch, folder):
    """Pretends the Debian package installed its files in `folder` (which may not exist)."""
    monkeypatch.setattr(pipelines, "DEBIAN_FASHION_MNIST", str(folder))


def prepared(dataset, tmp_path, caplog, **config):
    config = zoo.Config(dataset=dataset, data_dir=str(tmp_path / "tfds"), **config)
    with caplog.at_level(logging.INFO):
        return get_source(config).prepare()


def test_manual_dir_of_idx_files_comes_before_the_download(tmp_path, caplog, download_fails):
    write_idx_folder(tmp_path / "idx", gz=True)
    builder = prepared("mnist", tmp_path, caplog, manual_dir=str(tmp_path / "idx"))
    assert isinstance(builder, idx.IdxImages) and not download_fails
    assert builder.info.splits["train"].num_examples == 12
    assert f"mnist: the IDX files in --manual_dir={tmp_path / 'idx'}" in caplog.text


def test_fashion_mnist_falls_back_to_the_debian_package(tmp_path, caplog, monkeypatch, download_fails):
    write_idx_folder(tmp_path / "debian", num_train=20)
    debian_package(monkeypatch, tmp_path / "debian")
    builder = prepared("fashion_mnist", tmp_path, caplog)
    assert builder.info.splits["train"].num_examples == 20 and not download_fails
    assert f"fashion_mnist: the IDX files in {tmp_path / 'debian'} (Debian package dataset-fashion-mnist)" \
        in caplog.text


def test_manual_dir_wins_over_the_debian_package(tmp_path, caplog, monkeypatch):
    write_idx_folder(tmp_path / "debian", num_train=20)
    write_idx_folder(tmp_path / "mine", num_train=30)
    debian_package(monkeypatch, tmp_path / "debian")
    builder = prepared("fashion_mnist", tmp_path, caplog, manual_dir=str(tmp_path / "mine"))
    assert builder.info.splits["train"].num_examples == 30


def test_manual_dir_without_the_files_is_an_error_not_a_fall_through(tmp_path, caplog, download_fails):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailableError, match="empty has no train-images-idx3-ubyte"):
        prepared("fashion_mnist", tmp_path, caplog, manual_dir=str(tmp_path / "empty"))
    assert not download_fails


def test_a_prepared_tfds_copy_comes_before_the_debian_package(tmp_path, caplog, monkeypatch):
    write_idx_folder(tmp_path / "debian")
    debian_package(monkeypatch, tmp_path / "debian")
    monkeypatch.setattr(tfds.builder_cls("fashion_mnist"), "is_prepared", lambda builder: True)
    builder = prepared("fashion_mnist", tmp_path, caplog)
    assert builder.name == "fashion_mnist" and not isinstance(builder, idx.IdxImages)
    assert "fashion_mnist: tfds's prepared copy in" in caplog.text


def test_manual_dir_wins_over_a_prepared_tfds_copy_with_one_warning(tmp_path, caplog, monkeypatch):
    """Passing --manual_dir says which files to train on: a copy tfds prepared earlier must not silently win."""
    write_idx_folder(tmp_path / "idx")
    monkeypatch.setattr(tfds.builder_cls("mnist"), "is_prepared", lambda builder: True)
    builder = prepared("mnist", tmp_path, caplog, manual_dir=str(tmp_path / "idx"))
    assert isinstance(builder, idx.IdxImages) and builder.info.splits["train"].num_examples == 12
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "root"]
    assert warnings == [f"mnist: using the files in --manual_dir={tmp_path / 'idx'}, not tfds's prepared copy "
                        f"in {tmp_path / 'tfds' / 'mnist' / '3.0.1'}"]


@pytest.mark.parametrize("dataset, advice", [
    ("fashion_mnist", "`apt-get install dataset-fashion-mnist`, or pass --manual_dir=DIR with the four IDX files"),
    ("mnist", "pass --manual_dir=DIR with the four IDX files train-images-idx3-ubyte.gz"),
])
def test_without_any_source_the_error_says_how_to_provide_the_files(tmp_path, caplog, monkeypatch,
                                                                   download_fails, dataset, advice):
    debian_package(monkeypatch, tmp_path / "not-installed")
    with pytest.raises(DatasetUnavailableError, match="could not download") as error:
        prepared(dataset, tmp_path, caplog)
    assert download_fails == [dataset]
    assert advice in str(error.value) and "\n" not in str(error.value)


def test_batches_are_float32_in_unit_range_with_labels(tmp_path):
    write_idx_folder(tmp_path / "idx", num_train=16)
    config = zoo.Config(dataset="fashion_mnist", manual_dir=str(tmp_path / "idx"),
                        data_dir=str(tmp_path / "tfds"), image_size=32)
    source = get_source(config)
    batches, num_examples = make_dataset(source, config, "train", batch_size=4, training=True, with_labels=True)
    batch = next(iter(batches))
    assert num_examples == 16
    assert batch["images"].shape == (4, 32, 32, 1) and batch["images"].dtype == np.float32
    assert -1 <= batch["images"].numpy().min() < batch["images"].numpy().max() <= 1
    assert batch["labels"].dtype == np.int32 and set(batch["labels"].numpy()) <= set(range(10))
