"""Specification of `--dataset=folder:PATH`: any folder of JPEG/PNG images."""
import io
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from zoo.datasets import get_source, image_folder, make_dataset
from zoo.errors import DatasetUnavailableError, UsageError


def encoded(colour, size=(20, 12), format="JPEG", mode="RGB", **save_args):
    """Bytes of a plain image of `colour`, `size` (width, height)."""
    data = io.BytesIO()
    Image.new(mode, size, colour).save(data, format=format, **save_args)
    return data.getvalue()


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def folder_source(folder, data_dir):
    return get_source(zoo.Config(dataset=f"folder:{folder}", data_dir=str(data_dir)))


def examples(source):
    builder = source.prepare()
    return list(builder.as_dataset(split=source.train_split, shuffle_files=False).as_numpy_iterator())


def test_missing_path_and_file_path_are_errors_naming_them(tmp_path):
    with pytest.raises(DatasetUnavailableError, match=f"{tmp_path / 'nowhere'} does not exist"):
        folder_source(tmp_path / "nowhere", tmp_path)
    write_file(tmp_path / "a.png", encoded("red", format="PNG"))
    with pytest.raises(DatasetUnavailableError, match="is not a folder"):
        folder_source(tmp_path / "a.png", tmp_path)


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailableError, match="holds no .jpg, .jpeg or .png images$"):
        folder_source(tmp_path / "empty", tmp_path)
    write_file(tmp_path / "texts" / "notes.txt", b"hello")
    with pytest.raises(DatasetUnavailableError, match=r"holds no .jpg.*1 other files, such as notes.txt"):
        folder_source(tmp_path / "texts", tmp_path)


def test_folder_needs_a_path():
    with pytest.raises(UsageError, match="--dataset=folder:PATH"):
        get_source(zoo.Config(dataset="folder"))


def test_one_level_of_subfolders_gives_sorted_labels():
    files = ["dogs/1.jpg", "cats/2.png", "cats/3.JPG", "README.txt"]
    assert image_folder.class_names(files) == ("cats", "dogs")


@pytest.mark.parametrize("files", [["a.jpg", "cats/b.jpg"], ["cats/young/a.jpg", "dogs/b.jpg"], ["a.jpg"]])
def test_images_outside_one_level_of_subfolders_are_unlabelled(files):
    assert image_folder.class_names(files) == ()


def test_hidden_files_and_folders_are_ignored(tmp_path):
    write_file(tmp_path / "cats" / "a.jpg", encoded("red"))
    write_file(tmp_path / ".thumbnails" / "x.jpg", encoded("red"))
    write_file(tmp_path / "cats" / ".DS_Store", b"\0")
    assert image_folder.list_files(tmp_path) == [os.path.join("cats", "a.jpg")]


@pytest.mark.parametrize("mode, colour, format", [
    ("RGB", (200, 30, 10), "JPEG"), ("L", 128, "JPEG"), ("CMYK", (0, 255, 0, 0), "JPEG"), ("RGB", (200, 30, 10), "PNG"),
    ("RGBA", (10, 20, 30, 128), "PNG"), ("P", 3, "PNG"), ("LA", (100, 200), "PNG"), ("I;16", 40000, "PNG")])
def test_jpeg_and_png_are_kept_byte_for_byte_and_tensorflow_decodes_them_to_rgb(mode, colour, format):
    data = encoded(colour, format=format, mode=mode)
    assert image_folder.image_input(data) is data
    decoded = tf.image.decode_image(data, channels=3, dtype=tf.uint8).numpy()
    if mode == "I;16":  # TensorFlow scales 16 bits to 8 (40000 -> 156) where PIL's convert would clip
        expected = np.full((12, 20, 3), 156)
    else:
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_allclose(decoded, expected, atol=2)


def test_exif_rotated_photos_are_stored_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    image = image_folder.image_input(encoded("red", size=(20, 12), exif=exif.tobytes()))
    assert image.shape == (20, 12, 3)


@pytest.mark.parametrize("data, reason", [
    (b"not an image at all", "not an image"),
    (encoded("red")[:300], "damaged"),
    (encoded("red", format="GIF"), "GIF, not JPEG or PNG"),
])
def test_unusable_images_say_why(data, reason):
    with pytest.raises(image_folder.UnusableImage, match=reason):
        image_folder.image_input(data)


def test_a_required_size_rejects_others():
    with pytest.raises(image_folder.UnusableImage, match="20x12 pixels, expected 178x218"):
        image_folder.image_input(encoded("red"), shape=(218, 178))


def test_class_subfolders_are_labels_and_broken_files_one_warning(tmp_path, caplog):
    folder = tmp_path / "pets"
    for index in range(3):
        write_file(folder / "cats" / f"{index}.jpg", encoded((200, 0, 0)))
        write_file(folder / "dogs" / f"{index}.png", encoded((0, 0, 200), format="PNG"))
    write_file(folder / "dogs" / "broken.jpg", encoded("red")[:100])
    write_file(folder / "cats" / "fake.png", b"<html>not found</html>")
    write_file(folder / "notes.txt", b"taken in 2024")
    source = folder_source(folder, tmp_path / "tfds")
    assert (source.num_classes, source.class_names) == (2, ("cats", "dogs"))

    with caplog.at_level(logging.WARNING):
        found = examples(source)
    assert sorted((int(ex["label"]), int(ex["image"][0, 0].argmax())) for ex in found) == \
        [(0, 0)] * 3 + [(1, 2)] * 3  # cats red, dogs blue
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Skipped" in r.message]
    assert len(warnings) == 1
    assert "Skipped 3 of 9 files" in warnings[0]
    for name in ("broken.jpg", "fake.png", "notes.txt"):
        assert name in warnings[0]


def test_images_anywhere_below_are_unlabelled_and_keep_their_size(tmp_path):
    write_file(tmp_path / "photos" / "a.jpg", encoded("red", size=(30, 10)))
    write_file(tmp_path / "photos" / "2024" / "may" / "b.png", encoded("red", size=(8, 16), format="PNG"))
    source = folder_source(tmp_path / "photos", tmp_path / "tfds")
    assert (source.num_classes, source.label_key) == (0, None)
    assert sorted(ex["image"].shape for ex in examples(source)) == [(10, 30, 3), (16, 8, 3)]


def test_a_folder_of_only_broken_images_is_an_error(tmp_path):
    write_file(tmp_path / "bad" / "a.jpg", b"nothing")
    with pytest.raises(DatasetUnavailableError, match="none of the 1 files .* is a usable image: a.jpg"):
        folder_source(tmp_path / "bad", tmp_path / "tfds").prepare()


def test_two_folders_never_share_a_prepared_copy(tmp_path):
    write_file(tmp_path / "red" / "a.jpg", encoded((255, 0, 0)))
    write_file(tmp_path / "blue" / "a.jpg", encoded((0, 0, 255)))
    colours = [int(examples(folder_source(tmp_path / name, tmp_path / "tfds"))[0]["image"][0, 0].argmax())
               for name in ("red", "blue")]
    assert colours == [0, 2]


def test_a_changed_folder_is_prepared_afresh(tmp_path):
    write_file(tmp_path / "pics" / "a.jpg", encoded("red"))
    assert len(examples(folder_source(tmp_path / "pics", tmp_path / "tfds"))) == 1
    write_file(tmp_path / "pics" / "b.jpg", encoded("red"))
    assert len(examples(folder_source(tmp_path / "pics", tmp_path / "tfds"))) == 2


def test_batches_are_float32_in_unit_range_with_labels(tmp_path):
    for index in range(4):
        write_file(tmp_path / "pets" / "cats" / f"{index}.jpg", encoded((200, 0, 0), size=(40, 30)))
        write_file(tmp_path / "pets" / "dogs" / f"{index}.png", encoded((0, 0, 200), size=(30, 60), format="PNG"))
    config = zoo.Config(dataset=f"folder:{tmp_path / 'pets'}", data_dir=str(tmp_path / "tfds"), image_size=32)
    batches, num_examples = make_dataset(get_source(config), config, "train", batch_size=8, training=True,
                                         with_labels=True)
    batch = next(iter(batches))
    images, labels = batch["images"].numpy(), batch["labels"].numpy()
    assert num_examples == 8
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
    assert -1 <= images.min() < images.max() <= 1
    assert labels.dtype == np.int32
    # Every image, whatever its size, is its class's colour once cropped and resized.
    np.testing.assert_array_equal(images[..., 2].mean(axis=(1, 2)) > 0, labels == 1)


def test_every_tenth_image_is_held_out_as_the_test_split(tmp_path):
    for index in range(25):
        write_file(tmp_path / "many" / f"{index:02d}.png", encoded((index * 10, 0, 0), format="PNG"))
    source = folder_source(tmp_path / "many", tmp_path / "tfds")
    assert source.test_split == "test"
    builder = source.prepare()
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {"train": 23, "test": 2}
    reds = sorted(int(example["image"][0, 0, 0]) for example in
                  builder.as_dataset(split="test", shuffle_files=False).as_numpy_iterator())
    assert reds == [90, 190]  # 09.png and 19.png: the same images every time, whatever the listing order


def test_a_folder_too_small_to_hold_out_is_scored_on_its_training_images(tmp_path):
    for index in range(9):
        write_file(tmp_path / "few" / f"{index}.png", encoded("red", format="PNG"))
    assert folder_source(tmp_path / "few", tmp_path / "tfds").test_split == "train"
