"""Specification of CelebA from files already at hand: `--dataset=celeb_a --manual_dir=DIR`."""
import collections
import io
import logging
import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import zoo
from zoo.datasets import celeb_a_manual, get_source, make_dataset
from zoo.errors import DatasetUnavailableError, UsageError

# tfds's celeb_a feature names are the attribute file's header: the cGAN reads either source alike.
ATTRIBUTE_NAMES = list(tfds.builder("celeb_a", data_dir="/nonexistent").info.features["attributes"].keys())
# Two images on each side of each official split boundary, and 000003.jpg, which the
# stand-in partition file moves to test to show that the file, when present, decides.
NUMBERS = (1, 2, 3, 162770, 162771, 182637, 182638, 202599)
PARTITION = {1: 0, 2: 0, 3: 2, 162770: 0, 162771: 1, 182637: 1, 182638: 2, 202599: 2}


def face(index):
    """A 178x218 JPEG whose red level says which stand-in image it is."""
    data = io.BytesIO()
    Image.new("RGB", (178, 218), (20 + 25 * index, 90, 90)).save(data, format="JPEG", quality=95)
    return data.getvalue()


def index_of(image):
    return round((float(image[..., 0].mean()) - 20) / 25)


def smiling(number):
    return number % 2 == 1


def write_celeb_a(folder, form="folder", attributes=True, partition=True, images=None):
    """A stand-in for the files the CelebA authors distribute, with their names and formats."""
    os.makedirs(folder, exist_ok=True)
    images = images or {f"{number:06d}.jpg": face(index) for index, number in enumerate(NUMBERS)}
    prefix = {"folder": "img_align_celeba/", "kaggle": "img_align_celeba/img_align_celeba/",
              "zip": "img_align_celeba/"}[form]
    if form == "zip":
        with zipfile.ZipFile(os.path.join(folder, "img_align_celeba.zip"), "w") as archive:
            for name, data in images.items():
                archive.writestr(prefix + name, data)
            archive.writestr("__MACOSX/img_align_celeba/._000001.jpg", b"\0\5\0\7")
    else:
        for name, data in images.items():
            os.makedirs(os.path.join(folder, os.path.dirname(prefix + name)), exist_ok=True)
            with open(os.path.join(folder, prefix + name), "wb") as f:
                f.write(data)
    if attributes:
        rows = [f"{number:06d}.jpg " + " ".join(f"{1 if smiling(number) == (name == 'Smiling') else -1:>2}"
                                                for name in ATTRIBUTE_NAMES) for number in NUMBERS]
        with open(os.path.join(folder, "list_attr_celeba.txt"), "w") as f:
            f.write(f"{len(NUMBERS)}\n{' '.join(ATTRIBUTE_NAMES)} \n" + "\n".join(rows) + "\n")
    if partition:
        with open(os.path.join(folder, "list_eval_partition.txt"), "w") as f:
            f.write("".join(f"{number:06d}.jpg {split}\n" for number, split in PARTITION.items()))
    return folder


def celeb_a_source(manual_dir, data_dir):
    return get_source(zoo.Config(dataset="celeb_a", manual_dir=str(manual_dir), data_dir=str(data_dir)))


def numbers_by_split(builder):
    return {split: sorted(NUMBERS[index_of(ex["image"])] for ex in
                          builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator())
            for split in builder.info.splits}


@pytest.mark.parametrize("number, split", [
    (1, "train"), (162770, "train"), (162771, "validation"), (182637, "validation"),
    (182638, "test"), (202599, "test")])
def test_without_partition_file_the_official_boundaries_split_by_number(number, split):
    assert celeb_a_manual.split_of(f"{number:06d}.jpg", {}) == split


def test_other_names_split_80_10_10_by_a_hash_of_the_name():
    names = [f"face_{i}.jpg" for i in range(3000)] + ["300000.jpg"]
    splits = [celeb_a_manual.split_of(name, {}) for name in names]
    assert splits == [celeb_a_manual.split_of(name, {}) for name in names]
    shares = {split: count / len(names) for split, count in collections.Counter(splits).items()}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["validation"] - 0.1) < 0.03
    assert abs(shares["test"] - 0.1) < 0.03


@pytest.mark.parametrize("form", ["folder", "kaggle", "zip"])
def test_stand_in_gives_partition_splits_and_attributes(tmp_path, form):
    builder = celeb_a_source(write_celeb_a(tmp_path / "celeba", form), tmp_path / "tfds").prepare()
    assert numbers_by_split(builder) == {"train": [1, 2, 162770], "validation": [162771, 182637],
                                         "test": [3, 182638, 202599]}
    assert builder.info.features["image"].shape == (218, 178, 3)
    assert list(builder.info.features["attributes"].keys()) == ATTRIBUTE_NAMES
    for example in builder.as_dataset(split="train").as_numpy_iterator():
        number = NUMBERS[index_of(example["image"])]
        assert bool(example["attributes"]["Smiling"]) == smiling(number)
        assert bool(example["attributes"]["Male"]) != smiling(number)


def test_without_partition_file_the_split_is_by_number(tmp_path):
    builder = celeb_a_source(write_celeb_a(tmp_path / "celeba", partition=False), tmp_path / "tfds").prepare()
    assert numbers_by_split(builder) == {"train": [1, 2, 3, 162770], "validation": [162771, 182637],
                                         "test": [182638, 202599]}


def test_attributes_are_checked_when_asked_for(tmp_path):
    builder = celeb_a_source(write_celeb_a(tmp_path / "celeba"), tmp_path / "tfds").prepare()
    assert celeb_a_manual.check_attributes(builder, ["Smiling", "Male"]) == ["Smiling", "Male"]
    with pytest.raises(UsageError, match="CelebA has no attribute Smilling; known: 5_o_Clock_Shadow, "):
        celeb_a_manual.check_attributes(builder, ["Smilling"])


def test_a_partial_copy_has_only_the_splits_its_images_fall_in(tmp_path):
    images = {f"{number:06d}.jpg": face(index) for index, number in enumerate(NUMBERS[:3])}
    source = celeb_a_source(write_celeb_a(tmp_path / "celeba", images=images, partition=False), tmp_path / "tfds")
    assert numbers_by_split(source.prepare()) == {"train": [1, 2, 3]}


def test_without_attribute_file_examples_have_no_attributes(tmp_path):
    source = celeb_a_source(write_celeb_a(tmp_path / "celeba", attributes=False), tmp_path / "tfds")
    builder = source.prepare()
    assert set(builder.info.features) == {"image"}
    with pytest.raises(DatasetUnavailableError, match="celeba has no list_attr_celeba.txt, so CelebA's attributes "
                                                      "are unavailable"):
        celeb_a_manual.check_attributes(builder, ["Smiling"])
    config = zoo.Config(dataset="celeb_a", manual_dir=str(tmp_path / "celeba"), data_dir=str(tmp_path / "tfds"))
    with pytest.raises(UsageError, match="'celeb_a' has no labels"):
        make_dataset(source, config, "train", batch_size=2, training=True, with_labels=True)


def test_manual_dir_is_used_instead_of_the_download_with_the_tfds_crop(tmp_path, caplog):
    source = celeb_a_source(write_celeb_a(tmp_path / "celeba"), tmp_path / "tfds")
    assert source.crop_size == 108
    with caplog.at_level(logging.INFO):
        builder = source.prepare()
    assert isinstance(builder, celeb_a_manual.CelebAManual)
    assert f"celeb_a: the CelebA files in --manual_dir={tmp_path / 'celeba'}" in caplog.text


def test_manual_dir_without_images_names_both_forms(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailableError, match="neither img_align_celeba/ nor img_align_celeba.zip"):
        celeb_a_source(tmp_path / "empty", tmp_path / "tfds").prepare()


def test_a_damaged_zip_is_named(tmp_path):
    write_celeb_a(tmp_path / "celeba", "zip")
    path = tmp_path / "celeba" / "img_align_celeba.zip"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetUnavailableError, match=f"{path} is not a readable zip file"):
        celeb_a_source(tmp_path / "celeba", tmp_path / "tfds").prepare()


@pytest.mark.parametrize("line, replacement, message", [
    (3, "000001.jpg 1 -1", "line 3: expected an image name and 40 values of -1 or 1"),
    (4, "000002.jpg " + " ".join(["0"] * 40), "line 4: expected"),
    (1, "9", "declares 9 images on line 1 but lists 8"),
])
def test_malformed_attribute_file_is_named_with_its_line(tmp_path, line, replacement, message):
    path = write_celeb_a(tmp_path / "celeba") / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[line - 1] = replacement
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetUnavailableError, match=f"{path}.*{message}"):
        celeb_a_source(tmp_path / "celeba", tmp_path / "tfds").prepare()


def test_images_of_another_size_are_skipped_with_a_warning(tmp_path, caplog):
    images = {f"{number:06d}.jpg": face(index) for index, number in enumerate(NUMBERS)}
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, format="JPEG")
    images["000002.jpg"] = small.getvalue()
    source = celeb_a_source(write_celeb_a(tmp_path / "celeba", images=images), tmp_path / "tfds")
    with caplog.at_level(logging.WARNING):
        assert numbers_by_split(source.prepare())["train"] == [1, 162770]
    assert "000002.jpg (64x64 pixels, expected 178x218)" in caplog.text


def test_batches_are_centre_crops_in_unit_range(tmp_path):
    config = zoo.Config(dataset="celeb_a", manual_dir=str(write_celeb_a(tmp_path / "celeba")),
                        data_dir=str(tmp_path / "tfds"), image_size=64)
    batches, num_examples = make_dataset(get_source(config), config, "train", batch_size=2, training=True)
    images = next(iter(batches))["images"].numpy()
    assert num_examples == 3
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    assert -1 <= images.min() and images.max() <= 1


def test_without_manual_dir_tfds_downloads_and_its_error_points_to_manual_dir(tmp_path, monkeypatch):
    def fail(builder, download_config):
        raise ConnectionError("Google Drive quota exceeded")

    monkeypatch.setattr(tfds.builder_cls("celeb_a"), "download_and_prepare", fail)
    with pytest.raises(DatasetUnavailableError, match="pass --manual_dir=DIR with img_align_celeba/ or "
                                                      "img_align_celeba.zip"):
        get_source(zoo.Config(dataset="celeb_a", data_dir=str(tmp_path))).prepare()
