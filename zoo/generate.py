"""Pictures from a trained model without writing code: samples, latent walks, reconstructions, the run's timelapse.

    python -m zoo.generate --workdir=runs/dcgan_shapes --num_images=64 --out=grid.png
    python -m zoo.generate --export=exports/cgan/1 --classes=Sneaker,Bag --num_images=10 --out=grid.png
    python -m zoo.generate --export=exports/dcgan/1 --num_images=10000 --outdir=images   # one PNG each
    python -m zoo.generate --workdir=runs/dcgan_shapes --interpolate=4 --out=walk.png     # and walk.gif
    python -m zoo.generate --export=exports/vae/1 --reconstruct=my_photos --out=pairs.png
    python -m zoo.generate --timelapse=runs/dcgan_shapes                                  # its timelapse.gif

An export is loaded with tf.saved_model.load alone; a work directory's model is
restored from its checkpoint and called through the same bounded signatures an
export has. Latents come from the seed as in the `sample` signature, so a seed
gives the same images from a run and from its export, whatever the batch size.
"""
import dataclasses
import json
import math
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ start-up chatter, as train.py
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402
from tqdm import tqdm  # noqa: E402

from zoo import cli, images  # noqa: E402
from zoo.errors import UsageError  # noqa: E402
from zoo.signatures import seeded_normal  # noqa: E402

DEFAULT_NUM_IMAGES = 64
MAX_IMAGES = 1_000_000  # --outdir writes batch by batch: memory stays one batch whatever the count
MAX_GRID_IMAGES = 1024  # --out holds every image in one picture
MAX_INTERPOLATIONS = 64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SEED_RANGE = (-2 ** 63, 2 ** 63 - 1)  # the `sample` signature's seed is an int64


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """What to generate, from what, into what; built once from the flags and checked here.

    Not a field of zoo.Config: that one is a training run's, saved and compared on resume.
    """
    export: str = ""  # an export's version folder, exports/<model>/<version>
    workdir: str = ""  # a run directory: its latest (or best) checkpoint
    checkpoint: str = "latest"  # with --workdir: latest, or best (lowest FID during training)
    timelapse: str = ""  # a run directory: its sample grids as an animated GIF
    num_images: int = 0  # 0: one per --labels/--classes entry, or DEFAULT_NUM_IMAGES
    seed: int = 0
    out: str = ""  # one picture: a grid (.png), or the timelapse (.gif, default WORKDIR/timelapse.gif)
    outdir: str = ""  # one PNG per image
    labels: str = ""  # cGAN: comma-separated class indices, repeated up to num_images
    classes: str = ""  # cGAN: comma-separated class names, repeated up to num_images
    reconstruct: str = ""  # VAE: a folder of images to encode and decode
    interpolate: int = 0  # number of spherical latent walks; 0: none
    steps: int = 8  # images along each walk, its endpoints included
    batch_size: int = 64  # images per call of the model (at most the export's serving_batch_max)

    def __post_init__(self):
        given = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != f.default]
        sources = [name for name in ("export", "workdir", "timelapse") if name in given]
        if len(sources) != 1:
            raise UsageError("give one of --export=EXPORT_VERSION_DIR, --workdir=RUN_DIR or --timelapse=RUN_DIR"
                             + (f"; got {' and '.join('--' + name for name in sources)}" if sources else ""))
        if not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise UsageError(f"--seed must be an integer in [{SEED_RANGE[0]}, {SEED_RANGE[1]}] (an int64), "
                             f"got {self.seed}")
        if self.checkpoint not in ("latest", "best"):
            raise UsageError(f"--checkpoint must be latest or best, got {self.checkpoint!r}")
        if self.checkpoint != "latest" and not self.workdir:
            raise UsageError("--checkpoint chooses a run directory's checkpoint: it needs --workdir")
        if self.timelapse:
            others = sorted(set(given) - {"timelapse", "out"})
            if others:
                raise UsageError(f"--timelapse takes only --out=FILE.gif; got {', '.join('--' + n for n in others)}")
            if self.out and not self.out.lower().endswith(".gif"):
                raise UsageError(f"--out for --timelapse must be a .gif file, got {self.out!r}")
            return
        if bool(self.out) == bool(self.outdir):
            raise UsageError("give one of --out=FILE.png (one grid) or --outdir=DIR (one PNG per image)")
        if self.out and not self.out.lower().endswith(".png"):
            raise UsageError(f"--out must be a .png file, got {self.out!r}")
        for name in ("num_images", "interpolate", "steps", "batch_size"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise UsageError(f"--batch_size must be a positive integer, got {self.batch_size}")
        if self.labels and self.classes:
            raise UsageError("give --labels (indices) or --classes (names), not both")
        if self.labels and not re.fullmatch(r"-?\d+(,-?\d+)*", self.labels.replace(" ", "")):
            raise UsageError(f"--labels must be comma-separated integers such as 3,3,7, got {self.labels!r}")
        modes = [name for name in ("reconstruct", "interpolate") if name in given]
        if len(modes) > 1:
            raise UsageError("give --reconstruct or --interpolate, not both")
        if self.reconstruct and set(given) & {"num_images", "labels", "classes"}:
            raise UsageError("--reconstruct takes the images of its folder: no --num_images, --labels or --classes")
        if self.interpolate:
            if not self.out:
                raise UsageError("--interpolate writes a grid and a GIF: give --out=FILE.png (the GIF goes beside it)")
            if self.interpolate > MAX_INTERPOLATIONS:
                raise UsageError(f"--interpolate must be at most {MAX_INTERPOLATIONS}, got {self.interpolate}")
            if not 2 <= self.steps <= 64:
                raise UsageError(f"--steps must be in [2, 64], got {self.steps}")
            if "num_images" in given:
                raise UsageError("--interpolate makes --interpolate rows of --steps images: no --num_images")
        elif "steps" in given:
            raise UsageError("--steps is the length of each --interpolate walk: give --interpolate=N")
        limit = MAX_GRID_IMAGES if self.out else MAX_IMAGES
        if self.count > limit:
            raise UsageError(f"--num_images must be at most {limit} with --{'out' if self.out else 'outdir'}, "
                             f"got {self.count}" + (" (use --outdir for more)" if self.out else ""))

    @property
    def requested(self):
        """The --labels (ints) or --classes (names) asked for, in order; () if none."""
        if self.labels:
            return tuple(int(label) for label in self.labels.replace(" ", "").split(","))
        return tuple(name.strip() for name in self.classes.split(",")) if self.classes else ()

    @property
    def count(self):
        return self.num_images or len(self.requested) or DEFAULT_NUM_IMAGES


class Generator:
    """A trained model's signatures, name -> function(**inputs) -> outputs, whichever way it was loaded."""

    def __init__(self, functions, input_specs, owner, batch_max=None):
        self.functions, self.input_specs, self.batch_max = functions, input_specs, batch_max
        self.owner = owner  # signatures of a SavedModel fail once the object they came from is collected
        self.latent_dim = input_specs["serving_default"]["z"].shape[1]
        self.conditional = "labels" in input_specs["serving_default"]
        self.class_names = tuple(name.decode() for name in functions["classes"]()["class_names"].numpy()) \
            if "classes" in functions else ()

    @classmethod
    def from_export(cls, path):
        """An export version folder, loaded with TensorFlow alone."""
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise UsageError(f"{path} is not an export version (no saved_model.pb): pass --export=exports/<model>/<N>")
        try:
            loaded = tf.saved_model.load(path)
        except OSError as error:  # a damaged or cut-short saved_model.pb, or unreadable variables
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UsageError(f"--export={path}: cannot load that export ({reason}); export the run again "
                             f"with export.py") from None
        signatures = dict(loaded.signatures)
        description = os.path.join(path, "assets.extra", "model.json")  # absent from exports made before it
        batch_max = None
        if os.path.isfile(description):
            with open(description) as f:
                batch_max = json.load(f)["serving_batch_max"]
        return cls(signatures, {name: function.structured_input_signature[1] for name, function in signatures.items()},
                   loaded, batch_max)

    @classmethod
    def from_workdir(cls, workdir, checkpoint="latest"):
        """A run's model, traced through the same endpoints as its export."""
        from zoo import export  # the training stack: only a work directory needs it

        trained = export.load_trained(workdir, checkpoint)
        functions, specs = {}, {}
        for name, (function, signature) in export.endpoints(trained).items():
            traced = tf.function(function, input_signature=signature)
            functions[name] = lambda traced=traced, signature=signature, **inputs: traced(
                *[inputs[spec.name] for spec in signature])
            specs[name] = {spec.name: spec for spec in signature}
        return cls(functions, specs, trained, export.SERVING_BATCH_MAX)

    def labels(self, requested):
        """Class indices of `requested` (indices or names), checked against the model's classes."""
        if not self.conditional:
            raise UsageError("--labels and --classes are for a conditional model (cgan); this one takes no labels")
        num_classes = len(self.class_names)
        if requested and isinstance(requested[0], str):
            unknown = [name for name in requested if name not in self.class_names]
            if unknown:
                raise UsageError(f"unknown class name(s) {', '.join(map(repr, unknown))}; known: "
                                 f"{', '.join(self.class_names)}")
            return [self.class_names.index(name) for name in requested]
        outside = [label for label in requested if not 0 <= label < num_classes]
        if outside:
            raise UsageError(f"labels must be in [0, {num_classes}): this model has {num_classes} classes; "
                             f"got {outside}")
        return list(requested)

    def images(self, z, labels=None):
        """Images in [-1, 1] of latents z [n, latent_dim] (and labels [n] for the cGAN), as numpy."""
        inputs = {"z": tf.constant(z, tf.float32)}
        if self.conditional:
            inputs["labels"] = tf.constant(labels, tf.int32)
        return self.functions["serving_default"](**inputs)["images"].numpy()

    def batch_size(self, asked):
        """`asked`, or the largest batch the signatures accept if that is smaller."""
        return min(asked, self.batch_max or asked)

    def batched(self, z, labels, batch_size):
        """Yields the images of z (and labels) a batch at a time, with a progress bar for many."""
        batch_size = self.batch_size(batch_size)
        with tqdm(total=len(z), unit="image", disable=len(z) <= batch_size, file=sys.stderr) as progress:
            for start in range(0, len(z), batch_size):
                stop = min(start + batch_size, len(z))
                yield self.images(z[start:stop], None if labels is None else labels[start:stop])
                progress.update(stop - start)


def latents(num_images, latent_dim, seed):
    """The `sample` signature's latents for (num_images, seed), as numpy."""
    return seeded_normal(tf.constant(num_images, tf.int32), latent_dim, tf.constant(seed, tf.int64)).numpy()


def slerp(z0, z1, t):
    """Spherical interpolation [n, len(t), dim] from rows of z0 to rows of z1 (White, 2016).

    Gaussian latents live near a sphere; a straight line between two dips inside it, where the
    generator saw no training latents. t=0 gives z0 exactly and t=1 z1 (up to rounding).
    """
    z0, z1, t = np.asarray(z0, np.float64), np.asarray(z1, np.float64), np.asarray(t, np.float64)[None, :, None]
    cosine = np.sum(z0 * z1, axis=-1) / (np.linalg.norm(z0, axis=-1) * np.linalg.norm(z1, axis=-1))
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))[:, None, None]
    sin_omega = np.sin(omega)
    parallel = sin_omega < 1e-8  # the same direction: the straight line is the arc
    safe = np.where(parallel, 1.0, sin_omega)
    w0 = np.where(parallel, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    w1 = np.where(parallel, t, np.sin(t * omega) / safe)
    return (w0 * z0[:, None] + w1 * z1[:, None]).astype(np.float32)


def grid(pictures, cols):
    """[n, H, W, C] images in [-1, 1] -> [rows, cols, H, W, C], the last row padded with white."""
    rows = math.ceil(len(pictures) / cols)
    padding = np.ones((rows * cols - len(pictures), *pictures.shape[1:]), pictures.dtype)
    return np.concatenate([pictures, padding]).reshape(rows, cols, *pictures.shape[1:])


def ensure_parent(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def sample(generator, config):
    """--num_images images from the seed's latents (and the cGAN's labels): one grid or one PNG each."""
    count = config.count
    z = latents(count, generator.latent_dim, config.seed)
    labels = None
    if generator.conditional:
        chosen = generator.labels(config.requested) or list(range(len(generator.class_names)))
        labels = np.resize(np.asarray(chosen, np.int32), count)  # repeated up to count
    elif config.requested:
        generator.labels(config.requested)  # the error: this model takes no labels
    batches = generator.batched(z, labels, config.batch_size)
    if config.outdir:
        os.makedirs(config.outdir, exist_ok=True)
        written, index = [], 0
        for batch in batches:
            for image in images.to_uint8(batch):
                written.append(os.path.join(config.outdir, f"{index:06d}.png"))
                images.save_png(image, written[-1], scale=1)
                index += 1
        return written
    pictures = np.concatenate(list(batches))
    cols = len(generator.class_names) if generator.conditional and not config.requested and count >= 4 \
        else math.ceil(math.sqrt(count))  # default labels: one class a column
    ensure_parent(config.out)
    images.save_png(images.tile(grid(pictures, min(cols, count))), config.out)
    return [config.out]


def walks(generator, z, labels, batch_size):
    """Images [rows, steps, H, W, C] of latent walks z [rows, steps, dim] (labels [rows] held along each)."""
    rows, steps = z.shape[:2]
    flat_labels = None if labels is None else np.repeat(np.asarray(labels, np.int32), steps)
    pictures = np.concatenate(list(generator.batched(z.reshape(rows * steps, -1), flat_labels, batch_size)))
    return pictures.reshape(rows, steps, *pictures.shape[1:])


def save_walks(pictures, png_path):
    """The walks as a grid (one per row) and as a GIF going there and back (one frame per step)."""
    ensure_parent(png_path)
    images.save_png(images.tile(pictures), png_path)
    rows, steps = pictures.shape[:2]
    cols = math.ceil(math.sqrt(rows))
    frames = [images.tile(grid(pictures[:, step], cols)) for step in range(steps)]
    gif_path = os.path.splitext(png_path)[0] + ".gif"
    images.save_gif(frames + frames[-2:0:-1], gif_path, frame_ms=120, last_frame_ms=120)  # at the samples' size
    return [png_path, gif_path]


def interpolate(generator, config):
    """--interpolate spherical walks between pairs of the seed's latents: a grid and a GIF.

    For the cGAN, each walk holds its label fixed (--labels/--classes, else one class per row);
    and a second grid and GIF, `<out>_classes`, holds the first walk's latents fixed across every class.
    """
    count = config.interpolate
    endpoints = latents(2 * count, generator.latent_dim, config.seed)
    z = slerp(endpoints[:count], endpoints[count:], np.linspace(0.0, 1.0, config.steps))
    if not generator.conditional:
        if config.requested:
            generator.labels(config.requested)  # the error: this model takes no labels
        return save_walks(walks(generator, z, None, config.batch_size), config.out)
    num_classes = len(generator.class_names)
    chosen = generator.labels(config.requested) or list(range(num_classes))
    written = save_walks(walks(generator, z, np.resize(np.asarray(chosen, np.int32), count), config.batch_size),
                         config.out)
    across = walks(generator, np.repeat(z[:1], num_classes, axis=0), np.arange(num_classes), config.batch_size)
    return written + save_walks(across, os.path.splitext(config.out)[0] + "_classes.png")


def load_image(path, size, channels):
    """An image file as float [size, size, channels] in [-1, 1]: centre-cropped square, resized."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise UsageError(f"cannot read image {path}: {error}") from None
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(image, np.float32).reshape(size, size, channels) / 127.5 - 1.0


def reconstruct(generator, config):
    """The VAE's reconstructions of a folder's images: a grid of original/reconstruction rows, or one PNG each."""
    if "reconstruct" not in generator.functions:
        raise UsageError("--reconstruct needs a model with an encoder (vae); this one has no reconstruct signature")
    if not os.path.isdir(config.reconstruct):
        raise UsageError(f"--reconstruct={config.reconstruct} is not a folder")
    files = sorted(name for name in os.listdir(config.reconstruct) if name.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise UsageError(f"{config.reconstruct} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    limit = MAX_GRID_IMAGES if config.out else MAX_IMAGES
    if len(files) > limit:
        raise UsageError(f"{config.reconstruct} holds {len(files)} images, more than {limit} for one "
                         f"{'grid (use --outdir)' if config.out else 'call'}")
    size, _, channels = generator.input_specs["reconstruct"]["images"].shape[1:]
    written, originals, outputs = [], [], []
    if config.outdir:
        os.makedirs(config.outdir, exist_ok=True)
    batch_size = generator.batch_size(config.batch_size)
    with tqdm(total=len(files), unit="image", disable=len(files) <= batch_size, file=sys.stderr) as progress:
        for start in range(0, len(files), batch_size):
            names = files[start:start + batch_size]
            batch = np.stack([load_image(os.path.join(config.reconstruct, name), size, channels) for name in names])
            result = generator.functions["reconstruct"](images=tf.constant(batch))["images"].numpy()
            if config.outdir:
                for name, image in zip(names, images.to_uint8(result)):
                    written.append(os.path.join(config.outdir, os.path.splitext(name)[0] + ".png"))
                    images.save_png(image, written[-1], scale=1)
            else:
                originals.append(batch)
                outputs.append(result)
            progress.update(len(names))
    if config.outdir:
        return written
    cols = min(len(files), 8)
    originals, outputs = grid(np.concatenate(originals), cols), grid(np.concatenate(outputs), cols)
    pairs = np.stack([originals, outputs], axis=1).reshape(-1, *originals.shape[1:])  # each row above its output
    ensure_parent(config.out)
    images.save_png(images.tile(pairs), config.out)
    return [config.out]


def run(config):
    """Does what `config` asks; returns the paths written."""
    if config.timelapse:
        return [images.timelapse(os.path.join(config.timelapse, "samples"),
                                 config.out or os.path.join(config.timelapse, "timelapse.gif"))]
    if config.outdir:  # checked before the model loads: no time spent for an unwritable destination
        cli.writable_folder(config.outdir, "outdir")
    if config.out:
        cli.writable_file(config.out, "out")
    generator = (Generator.from_export(config.export) if config.export
                 else Generator.from_workdir(config.workdir, config.checkpoint))
    if config.reconstruct:
        return reconstruct(generator, config)
    if config.interpolate:
        return interpolate(generator, config)
    return sample(generator, config)


def assertion_message(error):
    """The message a signature's failed check carries, without TensorFlow's graph details."""
    found = re.search(r"assertion failed: \[(.*?)\]", error.message)
    return found.group(1) if found else error.message.strip().splitlines()[-1]


def main(argv):
    from absl import flags

    try:
        config = GenerateConfig(**{field.name: flags.FLAGS[field.name].value
                                   for field in dataclasses.fields(GenerateConfig)})
        written = run(config)
    except UsageError as error:
        cli.exit_with(error)
    except tf.errors.InvalidArgumentError as error:  # a check of the model's signatures
        cli.exit_with(assertion_message(error))
    except OSError as error:  # a write that failed after the checks: a full disk, a folder removed meanwhile
        cli.exit_with(f"cannot write {error.filename}: {error.strerror}" if error.filename else error)
    print(f"Wrote {written[0]}" + (f" and {len(written) - 1} more" if len(written) > 1 else ""))


def define_flags():
    """The command line's flags, one per GenerateConfig field, defaults from it."""
    from absl import flags

    defaults = GenerateConfig.__dataclass_fields__
    help_texts = {
        "export": "An export version folder (exports/<model>/<N>), loaded with TensorFlow alone.",
        "workdir": "A run directory written by train.py: its model from the latest (or --checkpoint=best) checkpoint.",
        "checkpoint": "With --workdir: latest, or best (the lowest FID during training with --eval_every).",
        "timelapse": "A run directory: write an animated GIF of its per-epoch sample grids (samples/epoch_*.png).",
        "num_images": f"Images to generate; 0: one per --labels/--classes entry, or {DEFAULT_NUM_IMAGES}. "
                      f"At most {MAX_GRID_IMAGES} in a grid (--out), {MAX_IMAGES} with --outdir.",
        "seed": "Seed of the latents: the same seed, the same images (those of the export's `sample`).",
        "out": "Write one picture: a grid (.png); with --interpolate also a .gif beside it; with --timelapse "
               "the .gif (default RUN_DIR/timelapse.gif).",
        "outdir": "Write one PNG per image into this folder (000000.png, ...; --reconstruct keeps the names).",
        "labels": "cGAN: comma-separated class indices (3,3,7), repeated up to --num_images.",
        "classes": "cGAN: comma-separated class names (Sneaker,Bag), repeated up to --num_images.",
        "reconstruct": "VAE: a folder of PNG/JPEG images to encode and decode (centre-cropped, resized).",
        "interpolate": f"Number of spherical walks between random latents (at most {MAX_INTERPOLATIONS}): "
                       "a grid, one walk a row, and a GIF; cGAN: also <out>_classes, one walk across every class.",
        "steps": "Images along each --interpolate walk, endpoints included (2 to 64).",
        "batch_size": "Images per call of the model: bounds memory. At most an export's serving_batch_max "
                      "(smaller batches are used above it).",
    }
    for name, field in defaults.items():
        define = flags.DEFINE_integer if field.type in (int, "int") else flags.DEFINE_string
        define(name, field.default, help_texts[name])


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
