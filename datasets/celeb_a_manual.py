"""CelebA from files you already have: `--dataset=celeb_a --manual_dir=DIR`.

tfds's celeb_a downloads from Google Drive, which often refuses (quota) or is
out of reach. DIR holds the aligned faces as the authors and the common mirrors
distribute them: the folder img_align_celeba/ (000001.jpg to 202599.jpg, also
when unpacked one level deeper, as Kaggle's archive does) or img_align_celeba.zip;
optionally list_attr_celeba.txt (Anno/) and list_eval_partition.txt (Eval/).

Splits: as list_eval_partition.txt says (0 train, 1 validation, 2 test). Without
it, the official boundaries by file number, which are what that file says:
000001-162770 train, 162771-182637 validation, 182638-202599 test; images with
other names go by a hash of the name, 80/10/10.

Attributes: with list_attr_celeba.txt, every example has tfds celeb_a's
`attributes`, a bool per attribute name (Smiling, Male, ...); without it the
examples have no `attributes` feature.
"""
import bisect
import contextlib
import functools
import hashlib
import os
import zipfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from zoo.datasets import image_folder
from zoo.errors import DatasetUnavailableError, UsageError

IMAGES_FOLDER = "img_align_celeba"
IMAGES_ZIP = "img_align_celeba.zip"
ATTRIBUTES_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_SHAPE = (218, 178)  # height, width of every aligned face
SPLITS = ("train", "validation", "test")  # list_eval_partition.txt's 0, 1, 2
OFFICIAL_SPLIT_ENDS = (162770, 182637, 202599)  # last file number of each split


def source_files(folder):
    """The files of `folder` the builder reads, relative to it: the images (or their zip) and the lists."""
    if not os.path.isdir(folder):
        raise DatasetUnavailableError(f"--manual_dir {folder} is not a folder")
    if os.path.isdir(os.path.join(folder, IMAGES_FOLDER)):
        images = [os.path.join(IMAGES_FOLDER, name)
                  for name in image_folder.list_files(os.path.join(folder, IMAGES_FOLDER))]
    elif os.path.isfile(os.path.join(folder, IMAGES_ZIP)):
        images = [IMAGES_ZIP]
    else:
        raise DatasetUnavailableError(f"{folder} holds neither {IMAGES_FOLDER}/ nor {IMAGES_ZIP}: the aligned "
                                      f"CelebA images, as distributed, in one of those forms")
    return images + [name for name in (ATTRIBUTES_FILE, PARTITION_FILE)
                     if os.path.isfile(os.path.join(folder, name))]


def split_of(name, partitions):
    """The split of image file `name`: from the partition file's {name: split}, else by number or hash."""
    if name in partitions:
        return partitions[name]
    stem = os.path.splitext(name)[0]
    if stem.isdigit() and 1 <= int(stem) <= OFFICIAL_SPLIT_ENDS[-1]:
        return SPLITS[bisect.bisect_left(OFFICIAL_SPLIT_ENDS, int(stem))]
    tenth = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") % 10
    return SPLITS[0] if tenth < 8 else SPLITS[tenth - 7]


def _table(path, first_row, num_values, allowed):
    """{image name: its values} from the rows `name v1 v2 ...` of a CelebA list file, from line `first_row` on."""
    with open(path) as f:
        lines = f.read().splitlines()
    table = {}
    for number, line in enumerate(lines[first_row - 1:], start=first_row):
        row = line.split()
        if row and (len(row) != num_values + 1 or not set(row[1:]) <= allowed):
            raise DatasetUnavailableError(f"{path} line {number}: expected an image name and {num_values} "
                                          f"values of {' or '.join(sorted(allowed))}, got {line[:80]!r}")
        if row:
            table[row[0]] = row[1:]
    return table


def read_attribute_names(path):
    """The attribute names on line 2 of list_attr_celeba.txt."""
    with open(path) as f:
        lines = [f.readline(), f.readline()]
    if not lines[0].strip().isdigit() or not lines[1].split():
        raise DatasetUnavailableError(f"{path} does not start with an image count and a line of attribute names")
    return lines[1].split()


def read_attributes(path):
    """{image name: {attribute name: bool}} from list_attr_celeba.txt, checked against its declared count."""
    names = read_attribute_names(path)
    table = _table(path, 3, len(names), {"1", "-1"})
    with open(path) as f:
        declared = int(f.readline())
    if declared != len(table):
        raise DatasetUnavailableError(f"{path} declares {declared} images on line 1 but lists {len(table)}")
    return {image: dict(zip(names, (value == "1" for value in values))) for image, values in table.items()}


def read_partitions(path):
    """{image name: split} from list_eval_partition.txt."""
    return {image: SPLITS[int(values[0])] for image, values in _table(path, 1, 1, {"0", "1", "2"}).items()}


def check_attributes(builder, names):
    """`names` if the prepared celeb_a `builder` (tfds's or this one) has those attributes.

    What the conditional GAN calls to condition on attributes: without
    list_attr_celeba.txt there are none, and that is an error only then.
    """
    if "attributes" not in builder.info.features:
        raise DatasetUnavailableError(
            f"{builder.builder_config.folder} has no {ATTRIBUTES_FILE}, so CelebA's attributes are unavailable "
            f"to condition on; put that file (from the authors' Anno folder) beside {IMAGES_FOLDER}")
    known = list(builder.info.features["attributes"].keys())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"CelebA has no attribute {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def _is_hidden(name):
    return any(part.startswith(".") for part in name.split("/"))


@contextlib.contextmanager
def _opened_images(folder, files):
    """{name relative to `folder` or the zip: a function returning the file's bytes} of every image file."""
    if files[0] != IMAGES_ZIP:
        yield {name: functools.partial(image_folder.read_file, os.path.join(folder, name))
               for name in files if name.startswith(IMAGES_FOLDER + os.sep)}
        return
    path = os.path.join(folder, IMAGES_ZIP)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetUnavailableError(f"{path} is not a readable zip file ({error})") from None
    with archive:
        yield {member.filename: functools.partial(_read_member, archive, member)
               for member in archive.infolist() if not member.is_dir() and not _is_hidden(member.filename)}


def _read_member(archive, member):
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, zlib.error) as error:  # a damaged member: skip it, not the zip
        raise image_folder.UnusableImage(f"damaged in the zip: {error}") from None


class CelebAManual(tfds.core.GeneratorBasedBuilder):
    """CelebA's aligned faces from the folder its builder config names (see pipelines.prepare_local)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _path(self, name):
        return os.path.join(self.builder_config.folder, name)

    def _info(self):
        features = {"image": tfds.features.Image(shape=(*IMAGE_SHAPE, 3), encoding_format="jpeg")}
        if ATTRIBUTES_FILE in self.builder_config.files:
            names = read_attribute_names(self._path(ATTRIBUTES_FILE))
            features["attributes"] = tfds.features.FeaturesDict({name: np.bool_ for name in names})
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"CelebA's aligned faces from {self.builder_config.folder}.",
            features=tfds.features.FeaturesDict(features),
        )

    def _split_generators(self, dl_manager):
        """A generator per split that has images: tfds refuses empty splits, and a partial copy has some."""
        del dl_manager  # the files are local
        files = self.builder_config.files
        partitions = read_partitions(self._path(PARTITION_FILE)) if PARTITION_FILE in files else {}
        with _opened_images(self.builder_config.folder, files) as images:
            splits = {name: split_of(os.path.basename(name), partitions) for name in images}
        return {split: self._generate_examples(split, [name for name in splits if splits[name] == split])
                for split in SPLITS if split in splits.values()}

    def _generate_examples(self, split, names):
        files = self.builder_config.files
        attributes = read_attributes(self._path(ATTRIBUTES_FILE)) if ATTRIBUTES_FILE in files else None
        skips = image_folder.Skips(f"{self.builder_config.folder} ({split} split)")
        with _opened_images(self.builder_config.folder, files) as images:
            for name in names:
                example, reason = _example(name, images[name], attributes)
                if reason:
                    skips.add(name, reason)
                else:
                    yield name, example
        skips.report(len(names))


def _example(name, read, attributes):
    """(example, None), or (None, why the image file `name` cannot be one)."""
    try:
        example = {"image": image_folder.usable_image(name, read, IMAGE_SHAPE)}
    except image_folder.UnusableImage as error:
        return None, str(error)
    if attributes is not None:
        if os.path.basename(name) not in attributes:
            return None, f"no row in {ATTRIBUTES_FILE}"
        example["attributes"] = attributes[os.path.basename(name)]
    return example, None
