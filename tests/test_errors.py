"""Hostile input: every case is answered by one line naming what was wrong and what is allowed.

The cases are docs/errors.md's table, and a test checks that every message there
is the one printed. `$TMP` stands for the test's temporary folder. Most cases
fail before any model is built; the few that need a trained run share one.
"""
import gzip
import io
import json
import logging
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import zoo
from zoo import cli, export, generate
from zoo.datasets import get_source, idx
from zoo.datasets.pipelines import CELEB_A_ATTRIBUTES
from zoo.errors import UsageError

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "errors.md")


def run_config(**values):
    return zoo.Config(**{"latent_dim": 8, "base_filters": 8, **values}).to_json()


def make_material(tmp):
    """The files and folders the cases name, all small."""
    write_file(tmp / "afile", b"not a folder")
    os.makedirs(tmp / "empty")
    write_file(tmp / "run" / "config.json", run_config(workdir=str(tmp / "run")).encode())
    write_file(tmp / "oldshapes" / "config.json", run_config(workdir=str(tmp / "oldshapes")).encode())
    write_file(tmp / "oldshapes" / "dataset.json", json.dumps(
        {"name": "shapes", "channels": 3, "num_classes": 6, "class_names": [], "data_version": "shapes 2.0.0"}).encode())
    write_file(tmp / "badjson" / "config.json", b'{"model": "dcgan", "epochs": 2')  # cut short
    write_file(tmp / "unknownkey" / "config.json", json.dumps({"model": "dcgan", "epoch": 3}).encode())
    write_file(tmp / "wrongtype" / "config.json", json.dumps({"model": "dcgan", "epochs": "20"}).encode())
    write_file(tmp / "notobject" / "config.json", b"[1, 2]")
    write_file(tmp / "badexport" / "saved_model.pb", b"not a protobuf")
    write_idx_folder(tmp / "idx_truncated")
    with open(tmp / "idx_truncated" / "train-images-idx3-ubyte", "r+b") as f:
        f.truncate(1000)


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def idx_file(magic, array):
    header = magic.to_bytes(4, "big") + b"".join(side.to_bytes(4, "big") for side in array.shape)
    return header + np.asarray(array, np.uint8).tobytes()


def write_idx_folder(folder, labels=tuple(range(10)) + (1, 2)):
    """The four IDX files of a tiny MNIST: 12 training and 4 test images."""
    for split, count in (("train", len(labels)), ("test", 4)):
        images_name, labels_name = idx.SPLIT_FILES[split]
        write_file(folder / images_name, idx_file(idx.IMAGES_MAGIC, np.zeros((count, 28, 28))))
        write_file(folder / labels_name, idx_file(idx.LABELS_MAGIC, np.array(labels[:count])))


def encoded(size=(178, 218), format="JPEG"):
    data = io.BytesIO()
    Image.new("RGB", size, (200, 90, 90)).save(data, format=format)
    return data.getvalue()


def png_bomb(side):
    """A 1-bit black PNG of side x side pixels, a few kB on disk: decoded, side^2 bytes, three times that in RGB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte, then the row's bits
    compressor = zlib.compressobj(9)
    rows = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


NAME_RULE = "use 1 to 128 letters, digits, '_', '-' or '.', starting with a letter or digit, without '..'"

# Run as a user runs them, one process each: (script, arguments, the line printed). One case or more
# for each way an error reaches the user: absl's parsing, Config, paths, tfds, config.json, export.
CLI_CASES = {
    "unknown flag": ("train.py", ["--epoch=3"],
                     "error: Unknown command line flag 'epoch'. Did you mean: epochs ? (see --helpshort)"),
    "integer flag given a word": ("train.py", ["--epochs=abc"],
                                  "error: flag --epochs=abc: invalid literal for int() with base 10: 'abc' "
                                  "(see --helpshort)"),
    "enum flag out of its values": ("train.py", ["--precision=half"],
                                    "error: flag --precision=half: value should be one of "
                                    "<auto|float32|mixed_float16|mixed_bfloat16> (see --helpshort)"),
    "unknown model": ("train.py", ["--model=gpt"],
                      "error: flag --model=gpt: unknown model 'gpt'; known: cgan, dcgan, vae (see --helpshort)"),
    "stray argument": ("train.py", ["dcgan"],
                       "error: unexpected arguments 'dcgan': every setting is a --flag=value (see --helpshort)"),
    "zero epochs": ("train.py", ["--epochs=0"], "error: epochs must be a positive integer, got 0"),
    "work directory is a file": ("train.py", ["--workdir=$TMP/afile"],
                                 "error: --workdir=$TMP/afile is a file; expected a folder (or a path where one "
                                 "can be made)"),
    "work directory is a URL": ("train.py", ["--workdir=gs://bucket/run"],
                                "error: --workdir=gs://bucket/run is a URL; the zoo writes with Python's file API: "
                                "pass a local folder or a network file system mounted as one"),
    "config.json not JSON": ("train.py", ["--workdir=$TMP/badjson"],
                             "error: $TMP/badjson/config.json: not valid JSON (Expecting ',' delimiter: line 1 "
                             "column 31 (char 30)); fix or delete that file"),
    "another model's run": ("train.py", ["--workdir=$TMP/run", "--model=vae", "--latent_dim=8", "--base_filters=8"],
                            "error: $TMP/run holds a run with other settings (model='dcgan' there, 'vae' now); pass the "
                            "same flags to resume it, or another --workdir"),
    "a run of another version of its data": (
        "train.py", ["--workdir=$TMP/oldshapes", "--latent_dim=8", "--base_filters=8"],
        "error: $TMP/oldshapes was trained on shapes 2.0.0, and shapes is now shapes 3.0.0: use another --workdir"),
    "truncated IDX file": (
        "train.py", ["--workdir=$TMP/w", "--dataset=mnist", "--manual_dir=$TMP/idx_truncated",
                     "--data_dir=$TMP/tfds"],
        "error: $TMP/idx_truncated/train-images-idx3-ubyte is truncated: its header declares 12x28x28 = 9408 bytes "
        "of data, the file holds 984"),
    "export name with a path": ("export.py", ["--workdir=$TMP/run", "--name=../../etc"],
                                f"error: model name '../../etc' is not allowed: {NAME_RULE}"),
    "export of a folder that is not a run": ("export.py", ["--workdir=$TMP/empty", "--export_dir=$TMP/exports"],
                                             "error: $TMP/empty is not a run directory (no config.json): pass the "
                                             "--workdir that train.py wrote"),
    "generate from a damaged export": (
        "-m", ["zoo.generate", "--export=$TMP/badexport", "--out=$TMP/grid.png"],
        "error: --export=$TMP/badexport: cannot load that export (Cannot parse file b'$TMP/badexport/saved_model.pb': "
        "Error parsing message with type 'tensorflow.SavedModel': Wire format was corrupt.); export the run again "
        "with export.py"),
    "generate into an output folder that is a file": (
        "-m", ["zoo.generate", "--export=$TMP/empty", "--outdir=$TMP/afile"],
        "error: --outdir=$TMP/afile is a file; expected a folder (or a path where one can be made)"),
    "generate with a stray argument": (
        "-m", ["zoo.generate", "--export=$TMP/empty", "grid.png"],
        "error: unexpected arguments 'grid.png': every setting is a --flag=value (see --helpshort)"),
}


def train_on(**values):
    """zoo.train of these settings in $TMP/w: what train.py runs once its flags are parsed."""
    def call(tmp):
        zoo.train(zoo.Config(**{"workdir": str(tmp / "w"), "data_dir": str(tmp / "tfds"), **values}))
    return call


def config_of(**values):
    return lambda tmp: zoo.Config(**values)


def entry_point_check(check, path, flag):
    """A check train.py or export.py makes of a path flag before anything else."""
    return lambda tmp: check(path.replace("$TMP", str(tmp)), flag)


def generated(**values):
    """zoo.generate.run of these settings ($TMP in a value stands for the test's folder)."""
    return lambda tmp: generate.run(generate.GenerateConfig(**{
        name: value.replace("$TMP", str(tmp)) if isinstance(value, str) else value for name, value in values.items()}))


def reconstruction_input(tmp):
    """generate.load_image of a PNG declaring 40000x40000 pixels, the first image --reconstruct reads."""
    write_file(tmp / "bomb" / "huge.png", png_bomb(40_000))
    return generate.load_image(str(tmp / "bomb" / "huge.png"), 32, 3)


def saved_config(folder):
    return lambda tmp: zoo.Config.read(str(tmp / folder / "config.json"))


# The same code paths, called in this process to keep the suite fast: (script, arguments, the function
# the entry point calls with them, the line it prints: "error: " and the UsageError's message).
DIRECT_CASES = {
    "negative batch size": ("train.py", ["--batch_size=-8"], config_of(batch_size=-8),
                            "error: batch_size must be a positive integer, got -8"),
    "image size not offered": ("train.py", ["--image_size=48"], config_of(image_size=48),
                               "error: image_size must be 32 or 64, got 48"),
    "infinite learning rate": ("train.py", ["--learning_rate=inf"], config_of(learning_rate=float("inf")),
                               "error: learning_rate must be a positive finite number, got inf"),
    "beta_1 of 1": ("train.py", ["--beta_1=1"], config_of(beta_1=1.0), "error: beta_1 must be in [0, 1), got 1.0"),
    "negative steps per epoch": ("train.py", ["--steps_per_epoch=-1"], config_of(steps_per_epoch=-1),
                                 "error: steps_per_epoch must be >= 0, got -1"),
    "negative KL weight": ("train.py", ["--model=vae", "--kl_weight=-1"], config_of(model="vae", kl_weight=-1.0),
                           "error: kl_weight must be a finite number >= 0, got -1.0"),
    "negative importance samples": ("train.py", ["--model=vae", "--iw_samples=-5"],
                                    config_of(model="vae", iw_samples=-5), "error: iw_samples must be >= 0, got -5"),
    "labels for a model without": ("train.py", ["--model=dcgan", "--dataset=celeb_a", "--condition_on=Smiling"],
                                   train_on(model="dcgan", dataset="celeb_a", condition_on="Smiling"),
                                   "error: --condition_on makes class labels, which dcgan does not take: "
                                   "use --model=cgan"),
    "attributes of a dataset without": ("train.py", ["--model=cgan", "--condition_on=Smiling"],
                                        train_on(model="cgan", condition_on="Smiling"),
                                        "error: --condition_on needs a dataset with binary attributes (celeb_a); "
                                        "'shapes' has none"),
    "unknown attribute": ("train.py", ["--model=cgan", "--dataset=celeb_a", "--condition_on=Smiiling"],
                          train_on(model="cgan", dataset="celeb_a", condition_on="Smiiling"),
                          "error: --condition_on: celeb_a has no attribute Smiiling; known: " +
                          ", ".join(CELEB_A_ATTRIBUTES)),
    "attribute named twice": ("train.py", ["--model=cgan", "--dataset=celeb_a", "--condition_on=Smiling,Smiling"],
                              train_on(model="cgan", dataset="celeb_a", condition_on="Smiling,Smiling"),
                              "error: --condition_on names an attribute twice: 'Smiling,Smiling'"),
    "argument to a tfds dataset": ("train.py", ["--dataset=mnist:digits"], train_on(dataset="mnist:digits"),
                                   "error: dataset 'mnist' takes no ':' argument, got 'digits'"),
    "folder dataset without a path": ("train.py", ["--dataset=folder:"], train_on(dataset="folder:"),
                                      "error: dataset 'folder' needs a path: --dataset=folder:PATH"),
    "work directory cannot be made": ("train.py", ["--workdir=$TMP/afile/run"],
                                      entry_point_check(cli.writable_folder, "$TMP/afile/run", "workdir"),
                                      "error: --workdir=$TMP/afile/run: cannot make that folder (Not a directory); "
                                      "pass a folder you can write in"),
    "data directory is a file": ("train.py", ["--data_dir=$TMP/afile"],
                                 entry_point_check(cli.readable_folder, "$TMP/afile", "data_dir"),
                                 "error: --data_dir=$TMP/afile is a file; expected a folder"),
    "manual directory missing": ("train.py", ["--dataset=mnist", "--manual_dir=$TMP/missing"],
                                 entry_point_check(cli.readable_folder, "$TMP/missing", "manual_dir"),
                                 "error: --manual_dir=$TMP/missing does not exist; expected a folder"),
    "manual directory is a file": ("train.py", ["--dataset=mnist", "--manual_dir=$TMP/afile"],
                                   entry_point_check(cli.readable_folder, "$TMP/afile", "manual_dir"),
                                   "error: --manual_dir=$TMP/afile is a file; expected a folder"),
    "manual directory without IDX files": (
        "train.py", ["--dataset=mnist", "--manual_dir=$TMP/empty"],
        lambda tmp: train_on(dataset="mnist", manual_dir=str(tmp / "empty"))(tmp),
        "error: $TMP/empty has no train-images-idx3-ubyte (nor train-images-idx3-ubyte.gz); an IDX folder holds "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
        "each plain or .gz"),
    "manual directory without CelebA": (
        "train.py", ["--dataset=celeb_a", "--manual_dir=$TMP/empty"],
        lambda tmp: train_on(dataset="celeb_a", manual_dir=str(tmp / "empty"))(tmp),
        "error: $TMP/empty holds neither img_align_celeba/ nor img_align_celeba.zip: the aligned CelebA images, "
        "as distributed, in one of those forms"),
    "image folder missing": ("train.py", ["--dataset=folder:$TMP/missing"],
                             lambda tmp: train_on(dataset=f"folder:{tmp}/missing")(tmp),
                             "error: $TMP/missing does not exist; expected a folder of JPEG or PNG images"),
    "image folder is a file": ("train.py", ["--dataset=folder:$TMP/afile"],
                               lambda tmp: train_on(dataset=f"folder:{tmp}/afile")(tmp),
                               "error: $TMP/afile is not a folder; expected a folder of JPEG or PNG images"),
    "image folder without images": ("train.py", ["--dataset=folder:$TMP/badjson"],
                                    lambda tmp: train_on(dataset=f"folder:{tmp}/badjson")(tmp),
                                    "error: $TMP/badjson holds no .jpg, .jpeg or .png images (only 1 other files, "
                                    "such as config.json)"),
    "a run of other shapes": ("train.py", ["--workdir=$TMP/run", "--image_size=64", "--latent_dim=8",
                                           "--base_filters=8"],
                              lambda tmp: zoo.train(zoo.Config(workdir=str(tmp / "run"), image_size=64, latent_dim=8,
                                                               base_filters=8)),
                              "error: $TMP/run holds a run with other settings (image_size=32 there, 64 now); pass "
                              "the same flags to resume it, or another --workdir"),
    "config.json with an unknown key": (
        "train.py", ["--workdir=$TMP/unknownkey"], saved_config("unknownkey"),
        "error: $TMP/unknownkey/config.json: unknown config keys ['epoch']; known: ['base_filters', 'batch_size', "
        "'beta_1', 'cache_dir', 'checkpoint_every', 'class_loss', 'condition_on', 'd_norm', 'data_dir', 'dataset', "
        "'diffaugment', 'ema_kimg', 'ema_rampup', 'epochs', 'eval_every', 'eval_samples', 'features', 'image_size', "
        "'inception', "
        "'iw_samples', 'keep_checkpoints', 'kl_weight', 'latent_dim', 'learning_rate', 'likelihood', 'lr_decay', "
        "'manual_dir', "
        "'model', 'num_samples', 'precision', 'r1_batch_shrink', 'r1_gamma', 'seed', 'steps_per_epoch', "
        "'steps_per_execution', "
        "'strategy', 'sync_batch_norm', 'workdir', 'xla']; fix or delete that file"),
    "config.json with a wrong type": ("train.py", ["--workdir=$TMP/wrongtype"], saved_config("wrongtype"),
                                      "error: $TMP/wrongtype/config.json: epochs must be an integer or null, got \"20\"; fix "
                                      "or delete that file"),
    "config.json not an object": ("export.py", ["--workdir=$TMP/notobject"],
                                  lambda tmp: export.load_trained(str(tmp / "notobject")),
                                  "error: $TMP/notobject/config.json: expected a JSON object of settings, got list; "
                                  "fix or delete that file"),
    "export of a run without checkpoint": ("export.py", ["--workdir=$TMP/run"],
                                           lambda tmp: export.load_trained(str(tmp / "run")),
                                           "error: $TMP/run has no checkpoint yet: train at least one epoch first"),
    "export directory is a file": ("export.py", ["--workdir=$TMP/run", "--export_dir=$TMP/afile"],
                                   entry_point_check(cli.writable_folder, "$TMP/afile", "export_dir"),
                                   "error: --export_dir=$TMP/afile is a file; expected a folder (or a path where "
                                   "one can be made)"),
    "export name with a separator": ("export.py", ["--workdir=$TMP/run", "--name=faces/v2"],
                                     lambda tmp: export.check_name("faces/v2"),
                                     f"error: model name 'faces/v2' is not allowed: {NAME_RULE}"),
    "hidden export name": ("export.py", ["--workdir=$TMP/run", "--name=.faces"],
                           lambda tmp: export.check_name(".faces"),
                           f"error: model name '.faces' is not allowed: {NAME_RULE}"),
    "empty export name": ("export.py", ["--workdir=$TMP/run", "--name="], lambda tmp: export.check_name(""),
                          f"error: model name '' is not allowed: {NAME_RULE}"),
    "generate with a seed beyond int64": (
        "-m", ["zoo.generate", "--export=$TMP/run", "--out=$TMP/grid.png", "--seed=9223372036854775808"],
        generated(export="$TMP/run", out="$TMP/grid.png", seed=2 ** 63),
        "error: --seed must be an integer in [-9223372036854775808, 9223372036854775807] (an int64), "
        "got 9223372036854775808"),
    "generate into a folder that cannot be made": (
        "-m", ["zoo.generate", "--export=$TMP/empty", "--out=$TMP/afile/grid.png"],
        generated(export="$TMP/empty", out="$TMP/afile/grid.png"),
        "error: --out=$TMP/afile/grid.png: $TMP/afile is a file; pass a file in a folder you can write in"),
    "generate a grid onto a folder": (
        "-m", ["zoo.generate", "--export=$TMP/empty", "--out=$TMP/empty.png"],
        lambda tmp: (os.makedirs(tmp / "empty.png"), generated(export="$TMP/empty", out="$TMP/empty.png")(tmp)),
        "error: --out=$TMP/empty.png is a folder; expected a file name"),
    "reconstruct a decompression bomb": (
        "-m", ["zoo.generate", "--export=EXPORT_VERSION_DIR", "--reconstruct=$TMP/bomb", "--out=$TMP/pairs.png"],
        reconstruction_input,
        "error: cannot read image $TMP/bomb/huge.png: Image size (1600000000 pixels) exceeds limit of 178956970 "
        "pixels, could be decompression bomb DOS attack."),
}


@pytest.mark.parametrize("case", list(DIRECT_CASES))
def test_case_is_one_clear_error(case, tmp_path):
    _, _, call, line = DIRECT_CASES[case]
    make_material(tmp_path)
    with pytest.raises(UsageError) as raised:
        call(tmp_path)
    assert f"error: {raised.value}" == line.replace("$TMP", str(tmp_path))
    assert not os.path.exists(tmp_path / "w" / "checkpoints")  # stopped before training


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_command_line_case_is_one_line(case, tmp_path, run_script):
    script, arguments, line = CLI_CASES[case]
    make_material(tmp_path)
    result = run_script(script, *(a.replace("$TMP", str(tmp_path)) for a in arguments), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == line.replace("$TMP", str(tmp_path))
    assert not os.path.exists(tmp_path / "w" / "checkpoints")  # stopped before training


# (script, arguments, the line printed) for a folder $TMP/locked made read-only (mode 555) or
# unreadable (mode 000). Root may write and read anything, so as root these cases cannot arise.
PERMISSION_CASES = {
    "read-only work directory": (0o555, "train.py", ["--workdir=$TMP/locked"],
                                 "error: --workdir=$TMP/locked is not writable; pass a folder you can write in"),
    "read-only export directory": (0o555, "export.py", ["--workdir=$TMP/run", "--export_dir=$TMP/locked"],
                                   "error: --export_dir=$TMP/locked is not writable; pass a folder you can "
                                   "write in"),
    "unreadable manual directory": (0o000, "train.py", ["--workdir=$TMP/w", "--dataset=mnist",
                                                        "--manual_dir=$TMP/locked"],
                                    "error: --manual_dir=$TMP/locked is not readable; pass a folder you can read"),
    "unreadable data directory": (0o000, "train.py", ["--workdir=$TMP/w", "--data_dir=$TMP/locked"],
                                  "error: --data_dir=$TMP/locked is not readable; pass a folder you can read"),
    "generate into a read-only folder": (0o555, "-m", ["zoo.generate", "--export=$TMP/empty",
                                                       "--out=$TMP/locked/grid.png"],
                                         "error: --out=$TMP/locked/grid.png: its folder $TMP/locked is not writable; "
                                         "pass a file in a folder you can write in"),
}


@pytest.mark.parametrize("case", list(PERMISSION_CASES))
def test_permission_case_is_one_line(case, tmp_path, run_script):
    mode, script, arguments, line = PERMISSION_CASES[case]
    make_material(tmp_path)
    os.makedirs(tmp_path / "locked")
    os.chmod(tmp_path / "locked", mode)
    try:
        if os.access(tmp_path / "locked", os.W_OK if mode else os.R_OK):
            pytest.skip("running as root, which may write and read any folder: the case cannot arise")
        result = run_script(script, *(a.replace("$TMP", str(tmp_path)) for a in arguments), timeout=300)
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == line.replace("$TMP", str(tmp_path))


def folder_prepared(folder, tmp):
    return get_source(zoo.Config(dataset=f"folder:{folder}", data_dir=str(tmp / "tfds"))).prepare()


def celeb_a_prepared(tmp, files):
    """Prepares celeb_a from a --manual_dir holding `files` {name: bytes}."""
    for name, data in files.items():
        write_file(tmp / "celeb_a" / name, data)
    config = zoo.Config(dataset="celeb_a", manual_dir=str(tmp / "celeb_a"), data_dir=str(tmp / "tfds"))
    return get_source(config).prepare()


def attribute_file(header_count="2", names=None, value="1"):
    names = names if names is not None else " ".join(CELEB_A_ATTRIBUTES)
    rows = "".join(f"00000{i}.jpg " + " ".join([value] * len(CELEB_A_ATTRIBUTES)) + "\n" for i in (1, 2))
    return f"{header_count}\n{names}\n{rows}".encode()


def idx_case(change):
    """Reads the training split of an IDX folder after `change(folder)` spoilt it."""
    def case(tmp):
        write_idx_folder(tmp / "idx")
        change(tmp / "idx")
        idx.read_split(tmp / "idx", "train")
    return case


def swap_images_for_labels(folder):
    shutil.copy(folder / "train-labels-idx1-ubyte", folder / "train-images-idx3-ubyte")


def truncate_gzip(folder):
    with open(folder / "train-images-idx3-ubyte", "rb") as f:
        write_file(folder / "train-images-idx3-ubyte", gzip.compress(f.read())[:20])


def label_out_of_range(folder):
    write_idx_folder(folder, labels=(0, 12))


def empty_file(folder):
    write_file(folder / "train-labels-idx1-ubyte", b"")


def fewer_labels(folder):
    write_file(folder / "train-labels-idx1-ubyte", idx_file(idx.LABELS_MAGIC, np.arange(5)))


IMAGES = "img_align_celeba/000001.jpg"
# What --manual_dir and --dataset=folder: files raise; train.py prints each as `error: <message>`.
FILE_CASES = {
    "IDX images file holding labels": (
        idx_case(swap_images_for_labels),
        "$TMP/idx/train-images-idx3-ubyte has magic number 0x00000801 (IDX labels); expected 0x00000803 "
        "(IDX images)"),
    "truncated gzip IDX file": (
        idx_case(truncate_gzip),
        "$TMP/idx/train-images-idx3-ubyte is a damaged or truncated gzip file (Compressed file ended before the "
        "end-of-stream marker was reached)"),
    "zero-byte IDX file": (idx_case(empty_file),
                           "$TMP/idx/train-labels-idx1-ubyte is truncated: 0 bytes, too short for an IDX header"),
    "IDX label out of range": (idx_case(label_out_of_range),
                               "$TMP/idx/train-labels-idx1-ubyte holds label 12; expected 0 to 9"),
    "IDX files of different counts": (
        idx_case(fewer_labels),
        "$TMP/idx/train-images-idx3-ubyte holds 12 images but $TMP/idx/train-labels-idx1-ubyte holds 5 labels; "
        "the counts must agree"),
    "image folder of broken images only": (
        lambda tmp: (write_file(tmp / "bad" / "a.jpg", encoded()[:300]), write_file(tmp / "bad" / "b.png", b""),
                     folder_prepared(tmp / "bad", tmp)),
        "none of the 2 files in $TMP/bad is a usable image: a.jpg (damaged: Truncated File Read); "
        "b.png (not an image)"),
    "CelebA zip that is not a zip": (
        lambda tmp: celeb_a_prepared(tmp, {"img_align_celeba.zip": b"<html>quota exceeded</html>"}),
        "$TMP/celeb_a/img_align_celeba.zip is not a readable zip file (File is not a zip file)"),
    "CelebA attribute file with a wrong header": (
        lambda tmp: celeb_a_prepared(tmp, {IMAGES: encoded(), "list_attr_celeba.txt": attribute_file(
            header_count="Smiling Male")}),
        "$TMP/celeb_a/list_attr_celeba.txt does not start with an image count and a line of attribute names"),
    "CelebA attribute row with a value other than 1 or -1": (
        lambda tmp: celeb_a_prepared(tmp, {IMAGES: encoded(), "list_attr_celeba.txt": attribute_file(value="0")}),
        "$TMP/celeb_a/list_attr_celeba.txt line 3: expected an image name and 40 values of -1 or 1, got "
        "'000001.jpg 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'"),
    "CelebA attribute file counting other images": (
        lambda tmp: celeb_a_prepared(tmp, {IMAGES: encoded(), "list_attr_celeba.txt": attribute_file(
            header_count="202599")}),
        "$TMP/celeb_a/list_attr_celeba.txt declares 202599 images on line 1 but lists 2"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_file_case_is_one_clear_error(case, tmp_path):
    call, message = FILE_CASES[case]
    with pytest.raises(UsageError) as raised:
        call(tmp_path)
    assert str(raised.value) == message.replace("$TMP", str(tmp_path))


# Files that are left out of a dataset with one warning line, the others kept.
SKIP_CASES = {
    "zero-byte image": ("empty.png", b"", "empty.png (not an image)"),
    "truncated JPEG": ("cut.jpg", encoded()[:300],
                       "cut.jpg (damaged: Truncated File Read)"),
    "decompression-bomb PNG": ("bomb.png", png_bomb(12_000),
                               "bomb.png (12000x12000 pixels, more than the 64,000,000 allowed (not decoded))"),
    "decompression-bomb PNG beyond PIL's limit": (
        "huge.png", png_bomb(40_000),
        "huge.png (more than the 64,000,000 pixels allowed, not decoded (Image size (1600000000 pixels) exceeds "
        "limit of 178956970 pixels, could be decompression bomb DOS attack.))"),
}


@pytest.mark.parametrize("case", list(SKIP_CASES))
def test_unusable_image_is_skipped_with_one_warning(case, tmp_path, caplog):
    name, data, reason = SKIP_CASES[case]
    write_file(tmp_path / "pics" / "good.jpg", encoded())
    write_file(tmp_path / "pics" / name, data)
    with caplog.at_level(logging.WARNING):
        builder = folder_prepared(tmp_path / "pics", tmp_path)
    assert builder.info.splits["train"].num_examples == 1  # the good image
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Skipped" in r.message]
    assert warnings == [f"Skipped 1 of 2 files in {tmp_path / 'pics'}: {reason}"]


@pytest.fixture(scope="module")
def trained_cgan(trained_runs, exported_runs):
    """The shared tiny conditional GAN run (6 classes, latent_dim 8) and its export."""
    return trained_runs["cgan"], exported_runs[1]["cgan"]


def edit_config(key, value):
    def edit(values):
        values[key] = value
    return edit


RUN_CASES = {
    "config.json edited to other shapes": (
        edit_config("latent_dim", 16),
        "error: $TMP/run/checkpoints/ckpt-1 does not hold the weights of the cgan that config.json describes "
        "(...); export a run directory as train.py left it"),
    "config.json edited to another model": (
        edit_config("model", "vae"),
        "error: $TMP/run/checkpoints/ckpt-1 does not hold the weights of the vae that config.json describes "
        "(...); export a run directory as train.py left it"),
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_export_of_an_edited_run_is_one_line(case, trained_cgan, tmp_path, run_script):
    workdir, _ = trained_cgan
    edit, line = RUN_CASES[case]
    shutil.copytree(workdir, tmp_path / "run")
    with open(tmp_path / "run" / "config.json") as f:
        values = json.load(f)
    edit(values)
    with open(tmp_path / "run" / "config.json", "w") as f:
        json.dump(values, f)
    result = run_script("export.py", f"--workdir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'exports'}",
                        timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    printed = result.stderr.strip().splitlines()[-1]
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    before, after = line.replace("$TMP/run/checkpoints/ckpt-1", latest).replace("$TMP", str(tmp_path)).split("(...)")
    assert printed.startswith(before) and printed.endswith(after), printed
    assert not os.path.exists(tmp_path / "exports" / "cgan")  # nothing exported


def serving_call(**inputs):
    def call(loaded):
        return loaded.signatures["serving_default"](**inputs)
    return call


SERVING_CASES = {
    "z of the wrong width": (serving_call(z=tf.zeros([2, 7]), labels=tf.constant([0, 1])),
                             "z must have shape [n, 8]"),
    "z of the wrong dtype": (serving_call(z=tf.zeros([2, 8], tf.float64), labels=tf.constant([0, 1])),
                             "was expected to be a float tensor but is a double tensor"),
    "labels of the wrong dtype": (serving_call(z=tf.zeros([2, 8]), labels=tf.constant([0.0, 1.0])),
                                  "was expected to be a int32 tensor but is a float tensor"),
    "label out of range": (serving_call(z=tf.zeros([2, 8]), labels=tf.constant([0, 9])),
                           "labels must be in [0, 6): this model has 6 classes"),
    "negative label": (serving_call(z=tf.zeros([2, 8]), labels=tf.constant([-1, 0])),
                       "labels must be in [0, 6): this model has 6 classes"),
    "as many labels as rows of z": (serving_call(z=tf.zeros([2, 8]), labels=tf.constant([0])),
                                    "z and labels must have the same number of rows"),
}


@pytest.mark.parametrize("case", list(SERVING_CASES))
def test_serving_call_with_bad_input_is_an_invalid_argument(case, trained_cgan):
    _, path = trained_cgan
    call, message = SERVING_CASES[case]
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        call(tf.saved_model.load(path))
    assert message in str(raised.value)


def test_every_case_is_documented_with_its_message():
    with open(DOCS) as f:
        docs = f.read()
    messages = [case[-1] for table in (CLI_CASES, DIRECT_CASES, PERMISSION_CASES, SKIP_CASES, RUN_CASES,
                                       SERVING_CASES) for case in table.values()]
    messages += [f"error: {message}" for _, message in FILE_CASES.values()]
    missing = [m for m in messages if f"`{m}`" not in docs]
    assert not missing
