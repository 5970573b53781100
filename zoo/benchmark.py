"""How fast the zoo trains here, next to a plain Keras loop and the machine's own limit.

    python -m zoo.benchmark                                  # every model, every setting; writes docs/benchmarks.md
    python -m zoo.benchmark --models=dcgan --windows=3 --nomemory --output=   # a quick look, nothing written

Every figure is a median over timed windows after warm-up, and the settings are timed
interleaved in one process (window 1 of each, then window 2 of each, ...), so a machine
that others load shifts them alike: compare ratios, not absolute times across runs.
Peak resident memory comes from a subprocess per setting (its VmHWM).
"""
import dataclasses
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import app, flags, logging  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo import device, training  # noqa: E402
from zoo.cli import exit_with, writable_file  # noqa: E402
from zoo.errors import UsageError  # noqa: E402
from zoo.files import write_text  # noqa: E402

FLAGS = flags.FLAGS
MARKERS = ("<!-- benchmark:begin -->", "<!-- benchmark:end -->")
STARVING_RATIO = 20  # the input pipeline must deliver this many times what training consumes


@dataclasses.dataclass(frozen=True)
class Setting:
    precision: str
    xla: bool

    @property
    def name(self):
        return f"{self.precision}{' +XLA' if self.xla else ''}"


def skipped_reason(setting, on_gpu):
    """Why a setting is not timed, or None. Only settings measured to be pathological are skipped."""
    if not on_gpu and setting == Setting("mixed_bfloat16", False):
        return ("oneDNN has no native bfloat16 on AVX2: measured 1938 ms/step against float32's 283 "
                "(issue 11, DCGAN 32px width 32 batch 64)")
    return None


class SyntheticSource:
    """A stand-in for a dataset: the channels and classes the networks are built for."""
    name, channels, num_classes = "synthetic", 3, 10


def synthetic_batches(config):
    batch = {"images": tf.random.stateless_uniform([config.batch_size, config.image_size, config.image_size, 3],
                                                   [0, 1], -1.0, 1.0),
             "labels": tf.random.stateless_uniform([config.batch_size], [0, 2], 0, 10, tf.int32)}
    return tf.data.Dataset.from_tensors(batch).repeat()


def model_config(model, setting=None, **values):
    defaults = zoo.MODELS.get(model).config_defaults
    precision, xla = (setting.precision, setting.xla) if setting else ("auto", None)
    return zoo.Config(**{**defaults, **values, "model": model, "precision": precision, "xla": xla})


# ---- training steps -------------------------------------------------------------------------------------

class ZooStep:
    """The zoo's own step: build_model's compile (XLA, precision, steps_per_execution), Keras's train_function."""

    def __init__(self, config):
        policy = device.resolve(config.precision, config.xla, "default")
        self.setting = Setting(policy.precision, policy.jit_compile)
        self.model = training.build_model(config, SyntheticSource, policy)
        self.model.make_train_function()
        self.steps_per_call = self.model.steps_per_execution
        self.iterator = iter(synthetic_batches(config))

    def run(self, steps):
        for _ in range(max(1, steps // self.steps_per_call)):
            logs = self.model.train_function(self.iterator)
        float(next(iter(logs.values())))
        return max(1, steps // self.steps_per_call) * self.steps_per_call


class ReferenceStep:
    """What a user would otherwise run (keras-io's examples): the same networks and train_step math,
    float32, no XLA, a plain tf.function called once per batch."""

    def __init__(self, config):
        config = config.replace(precision="float32", xla=False, steps_per_execution=1)
        policy = device.resolve("float32", False, "default")
        self.model = training.build_model(config, SyntheticSource, policy)
        self.step = tf.function(self.model.train_step)
        self.iterator = iter(synthetic_batches(config))

    def run(self, steps):
        for _ in range(steps):
            logs = self.step(next(self.iterator))
        float(next(iter(logs.values())))
        return steps


def time_interleaved(steppers, steps, windows, warmup):
    """name -> median seconds per step over `windows` windows, each taking its turn in every round."""
    for stepper in steppers.values():
        if warmup:
            stepper.run(warmup)
    seconds = {name: [] for name in steppers}
    for _ in range(windows):
        for name, stepper in steppers.items():
            start = time.perf_counter()
            done = stepper.run(steps)
            seconds[name].append((time.perf_counter() - start) / done)
    return {name: statistics.median(values) for name, values in seconds.items()}


# ---- FLOPs ----------------------------------------------------------------------------------------------

def forward_flops(network):
    """Multiply-adds x 2 of one image through `network`'s convolutions and dense layers."""
    total = 0
    for layer in network.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            height, width = layer.input.shape[1:3]
            total += height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            total += height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return 2 * total


def step_flops_per_image(model):
    """FLOPs of one training step per image, a backward pass counted as twice the forward.

    GANs: the D step runs G forward and D forward-backward on real and fake images; the G step
    runs G and D forward-backward. VAE: encoder and decoder forward-backward.
    """
    if hasattr(model, "discriminator"):
        g, d = forward_flops(model.generator), forward_flops(model.discriminator)
        return (g + 2 * 3 * d) + (3 * g + 3 * d)
    return 3 * (forward_flops(model.encoder) + forward_flops(model.decoder))


def matmul_flops_per_second(size=2048, repeats=10):
    """The machine's float32 limit as a large matmul reaches it (median of `repeats`)."""
    a = tf.random.stateless_normal([size, size], [0, 3])
    matmul = tf.function(lambda x: tf.matmul(x, x))
    float(tf.reduce_sum(matmul(a)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(tf.reduce_sum(matmul(a)))
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


# ---- input pipelines ------------------------------------------------------------------------------------

def make_jpeg_folder(path, count, seed=0):
    """`count` random 178x218 JPEGs (CelebA's aligned size) in `path`, made once."""
    from PIL import Image
    os.makedirs(path, exist_ok=True)
    existing = len([n for n in os.listdir(path) if n.endswith(".jpg")])
    rng = np.random.default_rng(seed)
    for index in range(existing, count):
        smooth = rng.integers(0, 256, (28, 23, 3), dtype=np.uint8)  # upsampled noise compresses like a photo
        Image.fromarray(smooth).resize((178, 218), Image.BILINEAR).save(os.path.join(path, f"{index:06d}.jpg"),
                                                                        quality=90)
    return path


def pipeline_images_per_second(config, batches, skip_batches=0):
    """Images/s the training pipeline delivers over `batches` batches, after `skip_batches`."""
    source = zoo.datasets.get_source(config)
    dataset, num_examples = zoo.datasets.make_dataset(source, config, source.train_split,
                                                      batch_size=config.batch_size, training=True)
    iterator = iter(dataset)
    for _ in range(skip_batches):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * config.batch_size / (time.perf_counter() - start), num_examples


def pipeline_rows(datasets, config, folder_images, data_dir):
    """(dataset, note, images/s) rows: the first epoch (decoding) and later ones (cached)."""
    from zoo.datasets import pipelines
    rows = []
    for name in datasets:
        note = ""
        values = dict(dataset=name, data_dir=data_dir)
        if name == "folder":
            folder = make_jpeg_folder(os.path.join(tempfile.gettempdir(), "zoo_benchmark_jpegs"), folder_images)
            values["dataset"] = f"folder:{folder}"
        run_config = config.replace(**values)
        try:
            if name == "celeb_a":
                import tensorflow_datasets as tfds
                with tfds.testing.mock_data(num_examples=folder_images):
                    ips, _ = pipeline_images_per_second(run_config, 20, skip_batches=5)
                rows.append((name, "tfds mock examples (no JPEG decoding)", ips))
                continue
            size = pipeline_images_per_second(run_config, 1)[1]
            epoch = max(1, size // config.batch_size)
            if name == "folder":
                first, _ = pipeline_images_per_second(run_config, epoch)
                rows.append((name, f"{size} JPEGs, first epoch: decoding", first))
                later, _ = pipeline_images_per_second(run_config, 2 * epoch, skip_batches=epoch)
                rows.append((name, "later epochs: in-memory cache", later))
                limit, pipelines.CACHE_LIMIT_BYTES = pipelines.CACHE_LIMIT_BYTES, 0
                try:
                    with tempfile.TemporaryDirectory() as scratch:
                        disk = run_config.replace(data_dir=scratch)
                        pipeline_images_per_second(disk, epoch + 1)  # writes the disk cache
                        later, _ = pipeline_images_per_second(disk, 2 * epoch, skip_batches=epoch)
                finally:
                    pipelines.CACHE_LIMIT_BYTES = limit
                rows.append((name, "later runs and epochs: disk cache (as above 2 GB)", later))
                continue
            skip = min(epoch + 1, 50)
            ips, _ = pipeline_images_per_second(run_config, min(2 * epoch, 200), skip_batches=skip)
            note = f"{size} images, " + ("cached" if skip > epoch else "within the first epoch: decoding")
        except UsageError as error:  # includes DatasetUnavailableError: no copy on this machine
            rows.append((name, f"not measured: {str(error).splitlines()[0][:90]}", None))
            continue
        rows.append((name, note, ips))
    return rows


# ---- memory ---------------------------------------------------------------------------------------------

def peak_memory_mb(model, setting_args, values):
    """Peak resident memory of a process that builds one setting and trains a few steps."""
    command = [sys.executable, "-m", "zoo.benchmark", f"--probe={json.dumps([model, setting_args, values])}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode:
        return None
    return float(result.stdout.strip().splitlines()[-1])


def peak_rss_mb():
    """This process's own peak resident memory: VmHWM, its address space's high-water mark.

    Not ru_maxrss: Linux carries the parent's resident size at fork across execve into the
    child's, so every probe reported the (large) benchmark process that started it.
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB
    except (OSError, StopIteration):  # no procfs (macOS): the fallback, with that caveat
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2 ** 20)


def probe(spec):
    model, setting_args, values = json.loads(spec)
    config = model_config(model, Setting(*setting_args[1:]) if setting_args[0] == "zoo" else None, **values)
    stepper = (ReferenceStep if setting_args[0] == "reference" else ZooStep)(config)
    stepper.run(3)
    print(peak_rss_mb())


# ---- all-reduce between two local workers (docs/scaling.md) -----------------------------------------------

def allreduce_worker(spec):
    """One of two MultiWorkerMirroredStrategy workers on 127.0.0.1: median seconds of a float32
    all-reduce per size in bytes; worker 0 prints them as JSON."""
    index, ports, sizes, repeats = json.loads(spec)
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                          "task": {"type": "worker", "index": index}})
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    results = {}
    for size in sizes:
        value = tf.ones([size // 4])
        reduce = tf.function(lambda: strategy.run(
            lambda: tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)))
        times = []
        for _ in range(repeats + 2):  # two warm-up rounds
            start = time.perf_counter()
            float(strategy.experimental_local_results(reduce())[0][0])
            times.append(time.perf_counter() - start)
        results[size] = statistics.median(times[2:])
    if index == 0:
        print(json.dumps(results))


def allreduce_seconds(sizes, repeats=10):
    """size in bytes -> median seconds of an all-reduce between two local worker processes."""
    import socket
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    workers = [subprocess.Popen([sys.executable, "-m", "zoo.benchmark",
                                 f"--allreduce_worker={json.dumps([i, ports, sizes, repeats])}"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    return {int(k): v for k, v in json.loads(outputs[0].strip().splitlines()[-1]).items()}


def gradient_bytes(model):
    """Bytes all-reduced per step: every trainable weight's float32 gradient."""
    config = model_config(model, Setting("float32", False), image_size=FLAGS.image_size)
    built = training.build_model(config, SyntheticSource, device.resolve("float32", False, "default"))
    return 4 * sum(int(np.prod(w.shape)) for w in built.trainable_weights)


def allreduce_report():
    sizes = {model: gradient_bytes(model) for model in FLAGS.models}
    measured = allreduce_seconds(sorted({1 << 10, 1 << 20, 16 << 20, *sizes.values()}))
    rows = [(f"{size / 2 ** 20:.3f}", f"{seconds * 1000:.2f}", f"{size / seconds / 1e9:.2f}")
            for size, seconds in sorted(measured.items())]
    lines = [f"All-reduce (sum, float32) between two MultiWorkerMirroredStrategy worker processes on 127.0.0.1, "
             f"{device_name()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, median of 10:\n",
             table(["MiB", "ms", "GB/s (size / time)"], rows), ""]
    lines += [f"{model}: {size / 2 ** 20:.2f} MiB of float32 gradients per step, all-reduced in "
              f"{measured[size] * 1000:.2f} ms here." for model, size in sizes.items()]
    return "\n".join(lines)


# ---- report ---------------------------------------------------------------------------------------------

def device_name():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "CPU"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def run(argv_command):
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    values = dict(image_size=FLAGS.image_size, batch_size=FLAGS.batch_size)
    if FLAGS.base_filters:
        values["base_filters"] = FLAGS.base_filters
    settings = [Setting(p, x == "true") for p, x in itertools.product(FLAGS.precisions, FLAGS.xla)]
    lines = [f"Measured {time.strftime('%Y-%m-%d')} with `{argv_command}` on {device_name()} "
             f"({os.cpu_count()} cores, {'GPU' if on_gpu else 'no GPU'}), TensorFlow {tf.__version__}, "
             f"Keras {keras.__version__}, batch {FLAGS.batch_size}, {FLAGS.image_size}x{FLAGS.image_size}x3, "
             f"median of {FLAGS.windows} interleaved windows of {FLAGS.window_steps} steps after "
             f"{FLAGS.warmup} warm-up steps."]
    for setting in settings:
        reason = skipped_reason(setting, on_gpu)
        if reason:
            print(f"skipped {setting.name}: {reason}", flush=True)
            lines.append(f"Skipped {setting.name}: {reason}.")
    settings = [s for s in settings if not skipped_reason(s, on_gpu)]
    limit = matmul_flops_per_second()
    lines.append(f"\nMachine limit: a 2048x2048 float32 matmul runs at {limit / 1e9:.1f} GFLOP/s.\n")
    rows, consumption = [], 0.0
    for model in FLAGS.models:
        config = model_config(model, **values)
        steppers = {"reference": ReferenceStep(config), "zoo default": ZooStep(config)}
        default_name = f"zoo default ({steppers['zoo default'].setting.name}, " \
                       f"{steppers['zoo default'].steps_per_call} steps/execution)"
        for setting in settings:
            steppers[setting.name] = ZooStep(model_config(model, setting, **values))
        seconds = time_interleaved(steppers, FLAGS.window_steps, FLAGS.windows, FLAGS.warmup)
        flops = step_flops_per_image(steppers["zoo default"].model)
        for name, per_step in seconds.items():
            images_per_second = FLAGS.batch_size / per_step
            memory = "-"
            if FLAGS.memory:
                kind = (["reference"] if name == "reference" else
                        ["zoo", *dataclasses.astuple(steppers[name].setting)])
                peak = peak_memory_mb(model, kind, values)
                memory = f"{peak:.0f}" if peak else "failed"
            label = default_name if name == "zoo default" else name
            rows.append((model, label, f"{per_step * 1000:.1f}", f"{images_per_second:.0f}",
                         f"{images_per_second / (FLAGS.batch_size / seconds['reference']):.2f}",
                         f"{100 * images_per_second * flops / limit:.3g}%", memory))
            print(table(["model", "setting", "ms/step", "images/s", "x reference", "share of matmul FLOP/s",
                         "peak RSS MB"], rows[-1:]).splitlines()[-1], flush=True)
        consumption = max(consumption, FLAGS.batch_size / seconds["zoo default"])
        lines.append(f"{model}: {flops / 1e6:.1f} MFLOP per image per training step; zoo default / reference = "
                     f"**{seconds['reference'] / seconds['zoo default']:.2f}x**.")
    lines.append("\n" + table(["model", "setting", "ms/step", "images/s", "x reference",
                               "share of matmul FLOP/s", "peak RSS MB"], rows))
    if FLAGS.pipeline_datasets:
        pipeline = pipeline_rows(FLAGS.pipeline_datasets, zoo.Config(**values), FLAGS.folder_images,
                                 FLAGS.data_dir)
        verdict = []
        for name, note, ips in pipeline:
            if ips is None:
                verdict.append((name, note, "-", "-"))
                continue
            ratio = ips / consumption
            state = "ok" if ratio >= STARVING_RATIO else f"**starves training** (< {STARVING_RATIO}x)"
            verdict.append((name, note, f"{ips:.0f}", f"{ratio:.1f}x {state}"))
        lines.append(f"\nInput pipelines (batch {FLAGS.batch_size}), against the fastest zoo default's "
                     f"consumption of {consumption:.0f} images/s:\n")
        lines.append(table(["dataset", "what", "images/s", "x training's consumption"], verdict))
    return "\n".join(lines)


def write_into(path, text):
    """Replaces what lies between the benchmark markers in `path` (the prose around them stays); a new
    file, or one without the markers, gets them at its end."""
    document = ""
    if os.path.exists(path):
        with open(path) as f:
            document = f.read()
    if not all(marker in document for marker in MARKERS):
        document += f"{MARKERS[0]}\n{MARKERS[1]}\n"
    begin, end = (document.index(marker) for marker in MARKERS)
    write_text(path, document[:begin + len(MARKERS[0])] + "\n" + text + "\n" + document[end:])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.ERROR)  # tfds's and Keras's notices would bury the table
    if FLAGS.probe:
        return probe(FLAGS.probe)
    if FLAGS.allreduce_worker:
        return allreduce_worker(FLAGS.allreduce_worker)
    if FLAGS.allreduce:
        print(allreduce_report())
        return None
    try:
        for model in FLAGS.models:
            zoo.MODELS.get(model)
        if FLAGS.windows < 1 or FLAGS.window_steps < 1 or FLAGS.warmup < 0:
            raise UsageError("--windows and --window_steps must be >= 1, --warmup >= 0")
        for precision in FLAGS.precisions:
            if precision not in device.PRECISIONS[1:]:
                raise UsageError(f"unknown precision {precision!r}; known: {', '.join(device.PRECISIONS[1:])}")
        if set(FLAGS.xla) - {"true", "false"}:
            raise UsageError(f"--xla takes true and/or false, got {','.join(FLAGS.xla)}")
        if FLAGS.output:
            writable_file(FLAGS.output, "output")  # now, not after the half hour of timing
        report = run("python -m zoo.benchmark " + " ".join(sys.argv[1:]))
    except UsageError as error:
        exit_with(error)
    print("\n" + report)
    if FLAGS.output:
        write_into(FLAGS.output, report)
        print(f"\nwritten into {FLAGS.output}")


flags.DEFINE_list("models", ["dcgan", "cgan", "vae"], "Models to time, at their default sizes.")
flags.DEFINE_integer("image_size", zoo.Config().image_size, "Image side.")
flags.DEFINE_integer("batch_size", zoo.Config().batch_size, "Global batch.")
flags.DEFINE_integer("base_filters", 0, "Network width; 0: each model's default.")
flags.DEFINE_list("precisions", ["float32", "mixed_float16", "mixed_bfloat16"], "Precisions to time.")
flags.DEFINE_list("xla", ["false", "true"], "XLA settings to time.")
flags.DEFINE_integer("windows", 5, "Timed windows per setting; the median is reported.")
flags.DEFINE_integer("window_steps", 16, "Training steps per timed window.")
flags.DEFINE_integer("warmup", 3, "Untimed steps (tracing, XLA compilation) before the windows.")
flags.DEFINE_boolean("memory", True, "Measure each setting's peak resident memory in a subprocess.")
flags.DEFINE_list("pipeline_datasets", ["shapes", "fashion_mnist", "celeb_a", "folder"],
                  "Datasets whose input pipelines to time; folder: generated JPEGs; celeb_a: tfds mock data. "
                  "(mnist and cifar10 have no copy offline: tfds would try its download.)")
flags.DEFINE_integer("folder_images", 3000, "JPEGs in the generated folder dataset.")
flags.DEFINE_string("data_dir", None, "tfds data directory of the pipelines timed.")
flags.DEFINE_string("output", "docs/benchmarks.md", "Markdown file whose benchmark section is rewritten; '': none.")
flags.DEFINE_boolean("allreduce", False, "Instead of the training tables: all-reduce times between two local "
                     "worker processes and each model's gradient bytes, for docs/scaling.md.")
flags.DEFINE_string("allreduce_worker", "", "Internal: run as one of the two all-reduce workers.")
flags.DEFINE_string("probe", "", "Internal: measure one setting's peak memory and print it.")

if __name__ == "__main__":
    app.run(main)
