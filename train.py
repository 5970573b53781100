"""Trains a model of the zoo.

    python train.py                                   # DCGAN on the built-in shapes (README: time, result)
    python train.py --model=dcgan --dataset=celeb_a --image_size=64 --base_filters=64
    python train.py --model=vae --dataset=fashion_mnist --epochs=5
    python train.py --model=cgan --dataset=celeb_a --condition_on=Smiling

Rerunning the same command resumes from the work directory's last good checkpoint.

Exit codes: 0 trained to --epochs; 2 a bad flag, path or file, printed as one line; 1 a
diverged loss (one line) or a traceback (a bug); 75 (EX_TEMPFAIL) stopped by
SIGTERM or SIGINT after saving a checkpoint: rerun the same command to resume. A second
Ctrl-C quits at once with 130, unsaved.
"""
import dataclasses
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ start-up chatter
from absl import app, flags  # noqa: E402

import zoo  # noqa: E402
from zoo import cli, device  # noqa: E402
from zoo.config import D_NORMS, EVAL_EVERY_DEFAULT, FEATURE_NETWORKS, LIKELIHOODS  # noqa: E402
from zoo.datasets.pipelines import parse_dataset_name  # noqa: E402
from zoo.errors import Diverged, Interrupted, UsageError  # noqa: E402

DEFAULTS = zoo.Config()
FLAGS = flags.FLAGS


def per_model(field):
    """Help text naming each model's default of a field whose default depends on the model."""
    return "Default per model: " + ", ".join(f"{name} {getattr(zoo.Config(model=name), field):g}"
                                             for name in zoo.MODELS.names()) + "."

flags.DEFINE_string("model", DEFAULTS.model, f"Model to train, one of: {', '.join(zoo.MODELS.names())}.")
flags.DEFINE_string("dataset", DEFAULTS.dataset,
                    f"Dataset, one of: {', '.join(zoo.DATASETS.names())}; 'folder:PATH' for a folder of images.")
flags.DEFINE_integer("image_size", DEFAULTS.image_size, "Side of the square images trained on: 32 or 64.")
flags.DEFINE_integer("batch_size", DEFAULTS.batch_size, "Global batch size, split over the replicas.")
flags.DEFINE_integer("epochs", None, "Total epochs; a resumed run trains up to this number. " + per_model("epochs"))
flags.DEFINE_integer("steps_per_epoch", DEFAULTS.steps_per_epoch,
                     "Cap on the steps of an epoch, for quick runs; 0: one pass over the training split.")
flags.DEFINE_integer("latent_dim", None, "Size of the latent vector z. " + per_model("latent_dim"))
flags.DEFINE_integer("base_filters", DEFAULTS.base_filters,
                     "Width of the networks: filters of D's first and G's last hidden convolution.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate. " + per_model("learning_rate"))
flags.DEFINE_float("beta_1", None, "Adam beta_1. " + per_model("beta_1"))
flags.DEFINE_float("lr_decay", DEFAULTS.lr_decay, "Share of the run, at its end, over which the learning rate "
                   "falls linearly to 0 (0: constant; 0.5: pix2pix's second half; see docs/results.md).")
flags.DEFINE_string("workdir", None, "Run directory: flags, checkpoints, samples, metrics, TensorBoard logs. "
                                     "Default: runs/<model>_<dataset>.")
flags.DEFINE_integer("seed", DEFAULTS.seed, "Seed of weights, noise, shuffling and the fixed sample grid.")
flags.DEFINE_boolean("xla", None, "Compile the train step with XLA (--xla/--noxla). Default: on with one "
                                   "replica (measured faster on CPU, docs/benchmarks.md), off with several "
                                   "(unverified there).")
flags.DEFINE_enum("precision", DEFAULTS.precision, device.PRECISIONS,
                  "Compute precision; auto: float32 on a CPU; on a GPU mixed_bfloat16 from compute capability "
                  "8.0, else mixed_float16 (see docs/benchmarks.md).")
flags.DEFINE_enum("strategy", DEFAULTS.strategy, device.STRATEGIES,
                  "tf.distribute strategy; auto: multi_worker with a TF_CONFIG cluster, mirrored with "
                  "several GPUs, else default.")
flags.DEFINE_string("data_dir", None, "tfds data directory (default: tfds's, ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "Folder of dataset files you already have (see README, Datasets).")
flags.DEFINE_integer("num_samples", DEFAULTS.num_samples, "Images in each epoch's sample grid.")
flags.DEFINE_enum("likelihood", DEFAULTS.likelihood, LIKELIHOODS,
                  "VAE decoder likelihood p(x|z): bernoulli on pixels in [0, 1], or logistic discretised "
                  "to the 256 pixel values; auto: bernoulli for 1-channel datasets, logistic for colour.")
flags.DEFINE_float("kl_weight", DEFAULTS.kl_weight,
                   "VAE beta: weight of the KL term in the training loss (1: the ELBO). The reported test "
                   "negative ELBO always uses 1.")
flags.DEFINE_integer("iw_samples", DEFAULTS.iw_samples,
                     "VAE: importance samples per test image for the importance-weighted log-likelihood "
                     "estimate after training; 0: off.")
flags.DEFINE_string("condition_on", DEFAULTS.condition_on,
                    "celeb_a: comma-separated attributes (e.g. Smiling,Male) whose on/off bits form the class "
                    "label the cgan conditions on: sum of bit_i * 2^i, so 2^k classes.")
# Crash safety
flags.DEFINE_string("checkpoint_every", DEFAULTS.checkpoint_every,
                    "Save a checkpoint every this many steps (500) or this long (90s, 5m, 1h), besides each "
                    "epoch's end and a stop by SIGTERM/SIGINT.")
flags.DEFINE_integer("keep_checkpoints", DEFAULTS.keep_checkpoints, "Checkpoints kept in <workdir>/checkpoints.")

INTERRUPTED_EXIT_CODE = 75  # EX_TEMPFAIL: saved and stopped by a signal; rerunning resumes

# quality (issue 9)
flags.DEFINE_boolean("sync_batch_norm", DEFAULTS.sync_batch_norm,
                     "GANs: batch norm statistics over the global batch, synchronised across replicas "
                     "(--sync_batch_norm/--nosync_batch_norm); unset: on when training on several replicas, "
                     "so they compute one replica's update; off: each replica normalises its own slice (and "
                     "its moving statistics drift from the others').")
flags.DEFINE_float("ema_kimg", DEFAULTS.ema_kimg,
                   "GANs: half-life, in thousands of training images, of the exponential moving average of "
                   "G's weights that sample grids and exports use; 0: no average, the raw G.")
flags.DEFINE_float("ema_rampup", DEFAULTS.ema_rampup,
                   "GANs: the average's half-life is at most this share of the images seen so far, so short "
                   "runs forget the random start; 0: no cap.")
flags.DEFINE_string("diffaugment", DEFAULTS.diffaugment,
                    "GANs: differentiable augmentations of every image D sees, real and generated, "
                    "comma-separated from color,translation,cutout (DiffAugment); '' for none.")
flags.DEFINE_float("r1_gamma", DEFAULTS.r1_gamma,
                   "GANs: gamma of the R1 penalty (gamma/2) E||grad_x D(x)||^2 on real images, added to D's "
                   "loss; D's batch norm uses its moving statistics there, so each gradient is one image's "
                   "own; 0: off.")
flags.DEFINE_integer("r1_batch_shrink", DEFAULTS.r1_batch_shrink,
                     "GANs: take R1 on the first 1/r1_batch_shrink (at least one) of each replica's real "
                     "images only: an unbiased estimate of the same penalty, for less compute; 1: the whole batch.")
flags.DEFINE_float("class_loss", DEFAULTS.class_loss,
                   "cGAN: weight lambda of an auxiliary classifier on D's features (AC-GAN), trained on real "
                   "images: D's loss gains lambda CE(C(x), y), G's lambda CE(C(G(z, y)), y); 0: off.")
flags.DEFINE_enum("d_norm", DEFAULTS.d_norm, D_NORMS,
                  "GANs: D's normalisation after its hidden convolutions: batch (the DCGAN paper's, statistics "
                  "of each batch of real or of generated images), layer (each image's own), or none.")
# Evaluation during training (zoo.evaluate)
flags.DEFINE_integer("eval_every", None, f"Score FID/KID/(class accuracy) every N steps, keeping the best checkpoint "
                                         f"in <workdir>/checkpoints/best; 0: off. Default: {EVAL_EVERY_DEFAULT} for "
                                         f"labelled datasets, celeb_a and --features=inception (about 5% of the training "
                                         f"time), off otherwise.")
flags.DEFINE_integer("eval_samples", DEFAULTS.eval_samples, "Generated images each evaluation during training scores.")
flags.DEFINE_enum("features", DEFAULTS.features, FEATURE_NETWORKS,
                  "Feature network of the scores: domain (a small CNN trained on the dataset's labels, cached) or "
                  "inception (needs --inception or the weights in ~/.keras/models).")
flags.DEFINE_string("inception", DEFAULTS.inception, "Inception weights: the TTUR/TF-GAN graph "
                    "classify_image_graph_def.pb or Keras's inception_v3_..._notop.h5. Default: ~/.keras/models.")
flags.DEFINE_string("cache_dir", DEFAULTS.cache_dir, "Cache of domain feature networks. Default: "
                    "<data_dir>/zoo_features.")
# speed (issue 11)
flags.DEFINE_integer("steps_per_execution", DEFAULTS.steps_per_execution,
                     "Train steps run per call from the host, so one host sync per that many steps; callbacks "
                     "that act per batch (the non-finite-loss check) see every that many steps. 1 with "
                     "several replicas.")


def _check(lookup):
    """A flag validator from a function that raises UsageError naming what is allowed."""

    def validate(value):
        try:
            lookup(value)
        except UsageError as error:
            raise flags.ValidationError(str(error)) from None
        return True

    return validate


flags.register_validator("model", _check(zoo.MODELS.get))
flags.register_validator("dataset", _check(parse_dataset_name))


def config_from_flags():
    """Flags given on the command line; for the rest, the run's own settings when its work directory holds
    one (so rerunning a command resumes the run as it began, whatever defaults a newer zoo has), else
    Config's defaults for the model."""
    names = [f.name for f in dataclasses.fields(zoo.Config)]
    given = {name: FLAGS[name].value for name in names if FLAGS[name].present}
    config = zoo.Config(**{**given, "model": FLAGS.model})
    saved = os.path.join(config.workdir, "config.json")
    if not os.path.isfile(saved):
        return config
    run = dataclasses.asdict(zoo.Config.read(saved))
    kept = {name: value for name, value in run.items() if name not in given and name != "workdir"}
    changed = {name: value for name, value in kept.items() if value != getattr(config, name)}
    if changed:
        logging.info("Resuming %s with its own settings where they differ from the defaults: %s", config.workdir,
                     ", ".join(f"{name}={value!r}" for name, value in sorted(changed.items())))
    # The folder the run is in now, not the one its config.json names (it may have been moved).
    return zoo.Config(**{**kept, **given, "workdir": config.workdir})


def check_paths(config):
    """The run's folders, checked before anything is built: one line for a path that cannot serve."""
    cli.writable_folder(config.workdir, "workdir")
    saved = os.path.join(config.workdir, "config.json")
    if os.path.exists(saved):
        zoo.Config.read(saved)  # a hand-edited file: its error names it, before training compares it
    if config.data_dir:  # tfds reads a prepared copy from a read-only folder, and makes a missing one
        (cli.readable_folder if os.path.exists(config.data_dir) else cli.writable_folder)(config.data_dir, "data_dir")
    if config.manual_dir:
        cli.readable_folder(config.manual_dir, "manual_dir")


def main(argv):
    del argv  # cli.parse_flags refuses positional arguments
    logging.getLogger().setLevel(logging.INFO)
    try:
        config = config_from_flags()
        check_paths(config)
        zoo.train(config)
    except UsageError as error:
        cli.exit_with(error)
    except Diverged as error:
        sys.exit(f"error: {error}")
    except Interrupted as stopped:
        print(str(stopped), file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    print(f"Done: samples in {config.workdir}/samples, export with "
          f"`python export.py --workdir={config.workdir}`")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
