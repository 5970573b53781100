"""MNIST-format (IDX) files: a strict reader, and a tfds builder over a folder of them.

MNIST, Fashion-MNIST and KMNIST are each four IDX files; tfds downloads them,
but offline machines often have them already (Debian's dataset-fashion-mnist
installs them). A truncated or swapped file must fail naming that file, not
train on garbage, so every header field is checked against the file's length.
"""
import gzip
import io
import math
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from zoo.errors import DatasetUnavailableError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_KINDS = {IMAGES_MAGIC: "IDX images", LABELS_MAGIC: "IDX labels"}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SIDE = 28
NUM_CLASSES = 10
_GZIP_MAGIC = b"\x1f\x8b"


def find_files(folder):
    """{upstream name: the name it has in `folder`, plain or .gz} for the four IDX files.

    Plain or .gz says nothing of the content: browsers often unpack a download
    but keep its .gz name, so read_bytes looks at the bytes.
    """
    if not os.path.isdir(folder):
        raise DatasetUnavailableError(f"{folder} is not a folder; expected one holding the four IDX files")
    names = [name for pair in SPLIT_FILES.values() for name in pair]
    found = {}
    for name in names:
        present = [n for n in (name, name + ".gz") if os.path.isfile(os.path.join(folder, n))]
        if not present:
            raise DatasetUnavailableError(f"{folder} has no {name} (nor {name}.gz); an IDX folder holds "
                                          f"{', '.join(names)}, each plain or .gz")
        found[name] = present[0]
    return found


def read_bytes(path):
    """The file's bytes, decompressed if they are gzip data (whatever the name says)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetUnavailableError(f"{path} is a damaged or truncated gzip file ({error})") from None


def read_idx(path, magic):
    """The array an IDX file of unsigned bytes holds, after checking its magic number and length."""
    data = read_bytes(path)
    if len(data) < 4:
        raise DatasetUnavailableError(f"{path} is truncated: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        what = _KINDS.get(found, "not an IDX file of unsigned bytes")
        raise DatasetUnavailableError(
            f"{path} has magic number 0x{found:08x} ({what}); expected 0x{magic:08x} ({_KINDS[magic]})")
    num_dims = magic & 0xFF
    header = 4 + 4 * num_dims
    if len(data) < header:
        raise DatasetUnavailableError(f"{path} is truncated: {len(data)} bytes, shorter than its "
                                      f"{header}-byte IDX header")
    shape = tuple(int.from_bytes(data[i:i + 4], "big") for i in range(4, header, 4))
    expected = math.prod(shape)
    if len(data) - header != expected:
        state = "truncated" if len(data) - header < expected else "longer than its header says"
        raise DatasetUnavailableError(
            f"{path} is {state}: its header declares {'x'.join(map(str, shape))} = {expected} bytes "
            f"of data, the file holds {len(data) - header}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_split(folder, split):
    """(images [N, 28, 28], labels [N]) of one split, after checking the two files agree."""
    files = find_files(folder)
    images_path, labels_path = (os.path.join(folder, files[name]) for name in SPLIT_FILES[split])
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetUnavailableError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images; "
                                      f"expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    if len(images) != len(labels):
        raise DatasetUnavailableError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                                      f"{len(labels)} labels; the counts must agree")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise DatasetUnavailableError(f"{labels_path} holds label {labels.max()}; expected 0 to "
                                      f"{NUM_CLASSES - 1}")
    return images, labels


class IdxImages(tfds.core.GeneratorBasedBuilder):
    """28x28 grey images in 10 classes, from the IDX files of the folder its builder config names.

    A builder config per folder (see pipelines.prepare_local), so two folders'
    data never share a prepared copy.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"The MNIST-format (IDX) files in {self.builder_config.folder}.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIDE, IMAGE_SIDE, 1)),
                "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the files are local
        return {split: self._generate_examples(split) for split in SPLIT_FILES}

    def _generate_examples(self, split):
        images, labels = read_split(self.builder_config.folder, split)
        for index, (image, label) in enumerate(zip(images, labels)):
            yield index, {"image": _png(image), "label": int(label)}


def _png(image):
    """PNG bytes of a grey image: PIL encodes them about 7 times as fast as tfds does."""
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="PNG")
    return encoded.getvalue()
