"""Any folder of JPEG/PNG images as a tfds dataset: `--dataset=folder:PATH`.

The folder is searched recursively. When every image sits in exactly one
level of subfolders (PATH/cat/1.jpg, PATH/dog/2.png) the subfolder names,
sorted, are the class labels; otherwise the images are unlabelled. Hidden
files and folders (.DS_Store, .git/) are ignored; other files that are not
readable JPEG or PNG images are skipped and reported in one warning, since
one bad file in thousands should not stop a run. Every tenth image by sorted path is
held out as the test split that scores are measured on; a folder of fewer than ten
images has no test split, and is scored against its training images (each score says so).
"""
import functools
import io
import logging
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from zoo.errors import DatasetUnavailableError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Larger images are refused from their header, before decoding: a few-kB PNG can declare a
# size that decodes to gigabytes (a decompression bomb). 64M pixels: an 8000x8000 photo.
MAX_PIXELS = 64_000_000
_NAMED_SKIPS = 5  # skipped files named in the warning
TEST_SHARE = 10  # every 10th image is a test image


class UnusableImage(ValueError):
    """A file that cannot be one of the dataset's images; the message says why."""


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_files(folder):
    """Paths relative to `folder` of the files under it, sorted, hidden ones left out.

    Raises DatasetUnavailableError unless the folder holds at least one .jpg,
    .jpeg or .png file.
    """
    if not os.path.isdir(folder):
        state = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise DatasetUnavailableError(f"{folder} {state}; expected a folder of JPEG or PNG images")
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [os.path.relpath(os.path.join(root, n), folder) for n in names if not n.startswith(".")]
    files.sort()
    if not any(map(is_image_name, files)):
        others = f" (only {len(files)} other files, such as {files[0]})" if files else ""
        raise DatasetUnavailableError(f"{folder} holds no .jpg, .jpeg or .png images{others}")
    return files


def test_files(files):
    """The held-out images: every TEST_SHARE-th image by sorted path, the same set whatever the order of listing."""
    return sorted(filter(is_image_name, files))[TEST_SHARE - 1::TEST_SHARE]


def class_names(files):
    """The sorted subfolder names if every image is in one of them, one level deep; else ()."""
    parts = [name.split(os.sep) for name in files if is_image_name(name)]
    if any(len(p) != 2 for p in parts):
        return ()
    return tuple(sorted({p[0] for p in parts}))


def image_input(data, shape=None):
    """Encoded image `data` as a tfds Image feature takes it, checked to decode.

    JPEG and PNG bytes are kept as they are: re-encoding would lose quality or
    multiply the size, and TensorFlow decodes every mode of them (grey, CMYK,
    palette, alpha, 16 bits) to RGB. Only EXIF-rotated photos, which TensorFlow
    would show sideways, become an upright RGB array. With `shape` (height,
    width), other sizes are unusable. Raises UnusableImage.
    """
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.width * image.height > MAX_PIXELS:
            raise UnusableImage(_too_large(image.width, image.height))
        image.load()
        rotated = image.getexif().get(ExifTags.Base.Orientation, 1) != 1
        upright = ImageOps.exif_transpose(image) if rotated else image
    except UnusableImage:
        raise
    except Image.DecompressionBombError as error:  # PIL's own check, at twice its larger limit
        raise UnusableImage(f"more than the {MAX_PIXELS:,} pixels allowed, not decoded ({error})") from None
    except UnidentifiedImageError:
        raise UnusableImage("not an image") from None
    except Exception as error:  # PIL raises many kinds of error on damaged files
        raise UnusableImage(f"damaged: {error}") from None
    if image.format not in ("JPEG", "PNG"):
        raise UnusableImage(f"{image.format}, not JPEG or PNG")
    if shape and (upright.height, upright.width) != tuple(shape):
        raise UnusableImage(f"{upright.width}x{upright.height} pixels, expected {shape[1]}x{shape[0]}")
    return np.asarray(upright.convert("RGB")) if rotated else data


def _too_large(width, height):
    return f"{width}x{height} pixels, more than the {MAX_PIXELS:,} allowed (not decoded)"


class Skips:
    """Files left out of a dataset, and why: one warning for all, or an error if all were."""

    def __init__(self, where):
        self.where = where
        self.reasons = {}

    def add(self, name, reason):
        self.reasons[name] = reason

    def report(self, total):
        if not self.reasons:
            return
        named = "; ".join(f"{name} ({reason})" for name, reason in list(self.reasons.items())[:_NAMED_SKIPS])
        more = f"; and {len(self.reasons) - _NAMED_SKIPS} more" if len(self.reasons) > _NAMED_SKIPS else ""
        if len(self.reasons) == total:
            raise DatasetUnavailableError(f"none of the {total} files in {self.where} is a usable image: "
                                          f"{named}{more}")
        logging.warning("Skipped %d of %d files in %s: %s%s", len(self.reasons), total, self.where, named, more)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def usable_image(name, read, shape=None):
    """image_input of the bytes `read()` returns for image file `name`. Raises UnusableImage."""
    if not is_image_name(name):
        raise UnusableImage(f"not {', '.join(IMAGE_EXTENSIONS)}")
    try:
        data = read()
    except OSError as error:
        raise UnusableImage(str(error)) from None
    return image_input(data, shape)


class ImageFolder(tfds.core.GeneratorBasedBuilder):
    """RGB images of their natural sizes from the folder its builder config names.

    A builder config per folder and file list (see pipelines.prepare_local), so
    two folders never share a prepared copy.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.", "1.1.0": "Every tenth image held out as the test split."}

    def _info(self):
        classes = class_names(self.builder_config.files)
        features = {"image": tfds.features.Image(shape=(None, None, 3))}
        if classes:
            features["label"] = tfds.features.ClassLabel(names=classes)
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"The JPEG and PNG images in {self.builder_config.folder}.",
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label") if classes else None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are local
        files = self.builder_config.files
        held_out = set(test_files(files))
        splits = {"train": self._generate_examples([name for name in files if name not in held_out])}
        if held_out:
            splits["test"] = self._generate_examples(sorted(held_out))
        return splits

    def _generate_examples(self, files):
        folder = self.builder_config.folder
        labels = {name: label for label, name in enumerate(class_names(self.builder_config.files))}
        skips = Skips(folder)
        for name in files:
            try:
                image = usable_image(name, functools.partial(read_file, os.path.join(folder, name)))
            except UnusableImage as error:
                skips.add(name, str(error))
                continue
            example = {"image": image}
            if labels:
                example["label"] = labels[name.split(os.sep)[0]]
            yield name, example
        skips.report(len(files))
