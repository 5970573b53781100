"""zoo.generate as a user runs it: pictures from a run or its export, reproducible by seed, bounded,
with one-line errors."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from zoo import generate
from zoo.errors import UsageError
from zoo.generate import GenerateConfig

SHAPES = ["circle", "square", "triangle", "star", "hexagon", "cross"]


@pytest.fixture(scope="module")
def sources(trained_runs, exported_runs):
    """model name -> {"workdir": its run, "export": its export version}."""
    return {name: {"workdir": workdir, "export": exported_runs[1][name]} for name, workdir in trained_runs.items()}


def run(**fields):
    return generate.run(GenerateConfig(**fields))


def read(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_all(folder):
    return np.stack([read(os.path.join(folder, name)) for name in sorted(os.listdir(folder))])


def frames(path):
    with Image.open(path) as image:
        return image.n_frames


@pytest.mark.parametrize("model", ["dcgan", "cgan", "vae"])
def test_outdir_holds_one_png_per_asked_image_at_the_model_size(sources, model, tmp_path):
    written = run(export=sources[model]["export"], num_images=5, batch_size=2, outdir=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [f"{index:06d}.png" for index in range(5)]
    assert written == [str(tmp_path / f"{index:06d}.png") for index in range(5)]
    assert read_all(tmp_path).shape == (5, 32, 32, 3)


@pytest.mark.parametrize("model", ["dcgan", "cgan", "vae"])
def test_a_seed_gives_the_export_sample_images_whatever_the_source_and_batch_size(sources, model, tmp_path):
    outputs = {}
    for name, source, seed, batch_size in [("export", "export", 1, 5), ("again", "export", 1, 5),
                                           ("batched", "export", 1, 2), ("run", "workdir", 1, 64),
                                           ("other seed", "export", 2, 5)]:
        run(**{source: sources[model][source]}, num_images=5, seed=seed, batch_size=batch_size,
            outdir=str(tmp_path / name))
        outputs[name] = read_all(tmp_path / name).astype(int)
    np.testing.assert_array_equal(outputs["export"], outputs["again"])
    for name in ("batched", "run"):  # other batches, other kernels: at most a rounding step apart
        assert np.abs(outputs[name] - outputs["export"]).max() <= 1, name
    assert (outputs["other seed"] != outputs["export"]).any()  # (a briefly trained model's images vary little)
    signature = tf.saved_model.load(sources[model]["export"]).signatures["sample"]
    seed = tf.constant(1, tf.int64)
    sampled = signature(labels=tf.constant([0, 1, 2, 3, 4]), seed=seed) if model == "cgan" \
        else signature(num_images=tf.constant(5), seed=seed)
    np.testing.assert_array_equal(sampled["images_uint8"].numpy(), outputs["export"])


def test_grid_has_the_asked_images_in_near_square_rows(sources, tmp_path):
    path = str(tmp_path / "sub" / "grid.png")
    assert run(export=sources["dcgan"]["export"], num_images=5, out=path) == [path]
    assert read(path).shape == (2 * (2 * 34 + 2), 2 * (3 * 34 + 2), 3)  # 2 rows of 3 (one blank), 2px gaps, x2


def test_cgan_grid_by_default_shows_one_class_a_column(sources, tmp_path):
    path = str(tmp_path / "grid.png")
    run(export=sources["cgan"]["export"], num_images=12, out=path)
    assert read(path).shape == (2 * (2 * 34 + 2), 2 * (6 * 34 + 2), 3)


def test_cgan_labels_by_index_and_by_name_agree_and_repeat_up_to_num_images(sources, tmp_path):
    export = sources["cgan"]["export"]
    run(export=export, labels="1,1,2", outdir=str(tmp_path / "index"))
    run(export=export, classes="square,square,triangle", outdir=str(tmp_path / "name"))
    np.testing.assert_array_equal(read_all(tmp_path / "index"), read_all(tmp_path / "name"))
    run(export=export, classes="star", num_images=4, outdir=str(tmp_path / "stars"))
    run(export=export, labels="3,3,3,3", outdir=str(tmp_path / "threes"))
    np.testing.assert_array_equal(read_all(tmp_path / "stars"), read_all(tmp_path / "threes"))


@pytest.mark.parametrize("model", ["dcgan", "cgan", "vae"])
def test_interpolation_endpoints_are_the_images_of_the_endpoint_latents(sources, model):
    generator = generate.Generator.from_export(sources[model]["export"])
    ends = generate.latents(6, generator.latent_dim, seed=4)
    labels = np.array([5, 0, 2], np.int32) if generator.conditional else None
    walks = generate.walks(generator, generate.slerp(ends[:3], ends[3:], np.linspace(0, 1, 5)), labels, 64)
    assert walks.shape == (3, 5, 32, 32, 3)
    np.testing.assert_allclose(walks[:, 0], generator.images(ends[:3], labels), atol=1e-5)
    np.testing.assert_allclose(walks[:, -1], generator.images(ends[3:], labels), atol=1e-5)
    assert np.abs(walks[:, 0] - walks[:, 2]).max() > 1e-4  # the walk moves


def test_slerp_keeps_the_norm_of_equal_norm_endpoints():
    z0, z1 = np.array([[3.0, 0.0]]), np.array([[0.0, 3.0]])
    walk = generate.slerp(z0, z1, np.linspace(0, 1, 7))
    np.testing.assert_allclose(np.linalg.norm(walk, axis=-1), 3.0, rtol=1e-6)
    np.testing.assert_array_equal(walk[0, 0], z0[0])
    np.testing.assert_allclose(walk[0, -1], z1[0], atol=1e-6)


def test_interpolate_writes_a_grid_and_gif_reproducible_by_seed(sources, tmp_path):
    first = run(export=sources["dcgan"]["export"], interpolate=3, steps=5, seed=0, out=str(tmp_path / "a.png"))
    again = run(export=sources["dcgan"]["export"], interpolate=3, steps=5, seed=0, out=str(tmp_path / "b.png"))
    other = run(export=sources["dcgan"]["export"], interpolate=3, steps=5, seed=1, out=str(tmp_path / "c.png"))
    assert first == [str(tmp_path / "a.png"), str(tmp_path / "a.gif")]
    assert read(first[0]).shape == (2 * (3 * 34 + 2), 2 * (5 * 34 + 2), 3)  # one walk a row
    assert frames(first[1]) == 2 * 5 - 2  # there and back
    np.testing.assert_array_equal(read(first[0]), read(again[0]))
    assert (read(first[0]) != read(other[0])).any()


def test_cgan_interpolation_holds_labels_along_walks_and_latents_across_classes(sources, tmp_path):
    written = run(export=sources["cgan"]["export"], interpolate=2, steps=4, classes="star,cross",
                  out=str(tmp_path / "walk.png"))
    assert [os.path.basename(path) for path in written] == ["walk.png", "walk.gif", "walk_classes.png",
                                                            "walk_classes.gif"]
    assert read(written[0]).shape == (2 * (2 * 34 + 2), 2 * (4 * 34 + 2), 3)
    assert read(written[2]).shape == (2 * (6 * 34 + 2), 2 * (4 * 34 + 2), 3)  # the first walk, every class

    def row(picture, index):  # the index-th row of 32x32 images, without the padding, enlarged x2
        top = 2 * (2 + index * 34)
        return picture[top:top + 64].astype(int)

    # Class 3 (star) of the across-classes grid is the first walk (held at star) of the other.
    assert np.abs(row(read(written[2]), 3) - row(read(written[0]), 0)).max() <= 1


def test_vae_reconstructs_a_folder_of_images(sources, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.jpg", "c.png"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    written = run(export=sources["vae"]["export"], reconstruct=str(folder), outdir=str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png", "c.png"] and len(written) == 3
    assert read_all(tmp_path / "out").shape == (3, 32, 32, 3)
    grid = run(workdir=sources["vae"]["workdir"], reconstruct=str(folder), out=str(tmp_path / "pairs.png"))
    assert read(grid[0]).shape == (2 * (2 * 34 + 2), 2 * (3 * 34 + 2), 3)  # originals above reconstructions
    with pytest.raises(UsageError, match="needs a model with an encoder"):
        run(export=sources["cgan"]["export"], reconstruct=str(folder), out=str(tmp_path / "x.png"))


def test_timelapse_animates_the_sample_grid_of_every_epoch(sources, tmp_path):
    workdir = sources["dcgan"]["workdir"]
    assert frames(os.path.join(workdir, "timelapse.gif")) == 2  # written by the end of training
    path = str(tmp_path / "run.gif")
    assert run(timelapse=workdir, out=path) == [path]
    assert frames(path) == 2
    with pytest.raises(UsageError, match="holds no epoch_"):
        run(timelapse=str(tmp_path))


def test_batches_stay_within_the_export_bound_whatever_batch_size_is_asked(sources, serving_batch_max, tmp_path):
    count = serving_batch_max + 3
    run(export=sources["dcgan"]["export"], num_images=count, batch_size=10 * count, outdir=str(tmp_path))
    assert len(os.listdir(tmp_path)) == count


def test_a_failed_signature_check_reads_as_its_message(sources, serving_batch_max):
    signature = tf.saved_model.load(sources["dcgan"]["export"]).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        signature(z=tf.zeros([serving_batch_max + 1, 8]))
    assert generate.assertion_message(caught.value) == \
        f"z may have at most {serving_batch_max} rows (the serving_batch_max of this export)"


def test_labels_for_a_model_without_labels_and_unknown_classes_are_usage_errors(sources, tmp_path):
    with pytest.raises(UsageError, match="for a conditional model"):
        run(export=sources["dcgan"]["export"], labels="1", out=str(tmp_path / "x.png"))
    with pytest.raises(UsageError, match=r"unknown class name\(s\) 'Sneaker'; known: circle, square"):
        run(export=sources["cgan"]["export"], classes="circle,Sneaker", out=str(tmp_path / "x.png"))
    with pytest.raises(UsageError, match=r"labels must be in \[0, 6\): this model has 6 classes; got \[6\]"):
        run(export=sources["cgan"]["export"], labels="0,6", out=str(tmp_path / "x.png"))


@pytest.mark.parametrize("fields, message", [
    ({}, "give one of --export=EXPORT_VERSION_DIR, --workdir=RUN_DIR or --timelapse=RUN_DIR"),
    ({"export": "e", "workdir": "w", "out": "g.png"}, "got --export and --workdir"),
    ({"export": "e"}, "give one of --out=FILE.png (one grid) or --outdir=DIR"),
    ({"export": "e", "out": "g.jpg"}, "--out must be a .png file"),
    ({"export": "e", "out": "g.png", "num_images": 2000}, "--num_images must be at most 1024 with --out, got 2000"),
    ({"export": "e", "out": "g.png", "labels": "1,x"}, "--labels must be comma-separated integers"),
    ({"export": "e", "out": "g.png", "labels": "1", "classes": "a"}, "not both"),
    ({"export": "e", "out": "g.png", "steps": 4}, "--steps is the length of each --interpolate walk"),
    ({"export": "e", "outdir": "d", "interpolate": 2}, "--interpolate writes a grid and a GIF"),
    ({"export": "e", "out": "g.png", "interpolate": 100}, "--interpolate must be at most 64"),
    ({"timelapse": "w", "num_images": 3}, "--timelapse takes only --out=FILE.gif"),
])
def test_bad_options_are_one_line_usage_errors(fields, message):
    with pytest.raises(UsageError) as caught:
        GenerateConfig(**fields)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_line_writes_pictures_and_fails_in_one_line(sources, run_script, tmp_path):
    export = sources["cgan"]["export"]
    done = run_script("-m", "zoo.generate", f"--export={export}", "--classes=star", "--num_images=3",
                      f"--out={tmp_path}/stars.png")
    assert done.returncode == 0, done.stderr[-3000:]
    assert os.path.isfile(tmp_path / "stars.png") and f"Wrote {tmp_path}/stars.png" in done.stdout
    failed = run_script("-m", "zoo.generate", f"--export={export}", "--classes=Sneaker", f"--out={tmp_path}/x.png")
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == \
        f"error: unknown class name(s) 'Sneaker'; known: {', '.join(SHAPES)}"
    too_many = run_script("-m", "zoo.generate", f"--export={export}", "--num_images=2000", f"--out={tmp_path}/x.png")
    assert too_many.returncode != 0 and "Traceback" not in too_many.stderr
    assert too_many.stderr.strip().splitlines()[-1] == \
        "error: --num_images must be at most 1024 with --out, got 2000 (use --outdir for more)"
    help_text = run_script("-m", "zoo.generate", "--helpshort").stdout
    for name in GenerateConfig.__dataclass_fields__:
        assert f"--{name}:" in help_text, name
