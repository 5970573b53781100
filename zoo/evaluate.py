"""Scores a work directory or an export: FID, KID, precision/recall, class accuracy, likelihood.

    python -m zoo.evaluate --workdir=runs/dcgan_shapes              # its latest checkpoint
    python -m zoo.evaluate --workdir=runs/dcgan_shapes --checkpoint=best
    python -m zoo.evaluate --workdir=runs/dcgan_shapes --generator=raw --output_dir=DIR  # without the EMA
    python -m zoo.evaluate --export=exports/cgan/1 --dataset=shapes  # a SavedModel, through TensorFlow only
    python -m zoo.evaluate --dataset=fashion_mnist                   # the real-data floor: train vs test images

Prints one table, writes eval.json (aside, then renamed) into the work directory (or
--output_dir) and appends the same record to its metrics.jsonl. See zoo.scoring for how.
"""
import logging
import os
import sys

from zoo.datasets import get_source
from zoo.datasets.pipelines import check_same_data
from zoo.errors import UsageError
from zoo.scoring import evaluate_model, export_sampler, generated_images, model_sampler, evaluate_real, write_record

CHECKPOINTS = ("latest", "best")
GENERATORS = ("ema", "raw")  # a GAN's weight average (what it samples and exports), or its trained weights


def evaluate_workdir(workdir, num_samples, checkpoint="latest", seed=0, progress=True, generator="ema",
                     **overrides):
    """The scores of a work directory's model, restored from its `checkpoint` (latest or best);
    `generator`="raw" scores a GAN's trained weights instead of their moving average (the EMA's
    ablation: one training, both generators); `overrides`: Config fields to change (features,
    inception, cache_dir, data_dir, batch_size)."""
    from zoo import export  # imports zoo.training, which imports this module for its callback
    config, model, _ = export.load_trained(workdir, checkpoint)
    raw = {}
    if generator == "raw":
        if not hasattr(model, "ema_generator"):
            raise UsageError(f"--generator=raw: {workdir} is a {config.model}; only the GANs keep a moving average "
                             f"of their generator")
        if model.ema_generator is None:
            raise UsageError(f"--generator=raw: {workdir} keeps no moving average of its generator "
                             f"(ema_kimg=0), so it samples its trained weights already: drop the flag")
        # Its sampler, and so the `sample` endpoint traced below, are now the trained weights. This model
        # is scored and dropped, never saved: its average's weights are still in it.
        model.ema_generator = None
        raw = {"generator": "raw"}
    config = config.replace(**overrides)
    source = get_source(config)
    check_same_data(source, workdir)  # scored against the test split of the data it was trained on
    return {"workdir": workdir, "model": config.model, "dataset": config.dataset, "checkpoint": checkpoint,
            "step": int(model.step.numpy()), "seed": seed, **raw,
            **evaluate_model(config, source, model_sampler(model), num_samples, seed, model, progress)}


def evaluate_export(path, config, num_samples, seed=0, progress=True):
    """The scores of a SavedModel's `sample` signature against `config.dataset`'s test images;
    the image size is the export's own."""
    source = get_source(config)
    sampler = export_sampler(path, source.num_classes)
    first, _ = next(generated_images(sampler, 1, seed))
    size, channels = first.shape[1], first.shape[-1]
    if channels != source.channels:
        raise UsageError(f"{path} makes {channels}-channel images, {source.name} has {source.channels}: "
                         f"pass the --dataset it was trained on")
    config = config.replace(image_size=size)
    return {"export": path, "dataset": config.dataset, "seed": seed,
            **evaluate_model(config, source, sampler, num_samples, seed, progress=progress)}


def table(record):
    """One aligned name/value line per entry."""
    width = max(map(len, record))
    return "\n".join(f"{name:<{width}}  {value:.6g}" if isinstance(value, float) else f"{name:<{width}}  {value}"
                     for name, value in record.items())


def main(argv):
    """`python -m zoo.evaluate`: flags -> one of evaluate_workdir, evaluate_export, evaluate_real."""
    from absl import flags

    from zoo import Config

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    FLAGS = flags.FLAGS
    given = {name: FLAGS[name].value for name in ("features", "inception", "cache_dir", "data_dir", "manual_dir",
                                                  "batch_size") if FLAGS[name].present}
    sources = [name for name in ("workdir", "export") if FLAGS[name].value]
    if len(sources) > 1:
        raise UsageError("pass one of --workdir and --export, not both")
    if FLAGS.workdir:
        record = evaluate_workdir(FLAGS.workdir, FLAGS.num_samples, FLAGS.checkpoint, FLAGS.seed,
                                  generator=FLAGS.generator, **given)
    else:
        if FLAGS["generator"].present:
            raise UsageError("--generator chooses between a work directory's generators: pass it with --workdir")
        if not FLAGS.dataset:
            raise UsageError("pass --workdir=RUN_DIR, --export=EXPORT_VERSION_DIR with --dataset, or --dataset "
                             "alone for the real-data floor")
        config = Config(dataset=FLAGS.dataset, image_size=FLAGS.image_size, **given)
        if FLAGS.export:
            record = evaluate_export(FLAGS.export, config, FLAGS.num_samples, FLAGS.seed)
        else:
            record = {"dataset": config.dataset, "image_size": config.image_size,
                      **evaluate_real(config, get_source(config), FLAGS.num_samples)}
    # A raw generator's scores are not the run's: they go where --output_dir says, or nowhere.
    output_dir = FLAGS.output_dir or (FLAGS.workdir if FLAGS.generator == "ema" else None)
    if output_dir:
        write_record(record, output_dir)
    print(table(record))
    if output_dir:
        print(f"Written to {os.path.join(output_dir, 'eval.json')} and metrics.jsonl")


def define_flags():
    from absl import flags

    from zoo import Config

    defaults = Config()
    flags.DEFINE_string("workdir", None, "Run directory written by train.py: scores its model.")
    flags.DEFINE_string("export", None, "A SavedModel version folder written by export.py (e.g. exports/dcgan/1): "
                                        "scores its `sample` signature; needs --dataset.")
    flags.DEFINE_string("dataset", None, "The export's dataset; alone: score the dataset's train split against its "
                                         "test split (the real-data floor).")
    flags.DEFINE_integer("image_size", defaults.image_size, "Image side for --dataset alone: 32 or 64.")
    flags.DEFINE_integer("num_samples", 10000, "Generated (or real train) images to score; the papers use 50000.",
                         lower_bound=2)
    flags.DEFINE_enum("checkpoint", "latest", CHECKPOINTS, "Which checkpoint of --workdir: latest or best "
                                                           "(lowest FID during training).")
    flags.DEFINE_integer("seed", 0, "Seed of the generated images: batch b draws with seed + b.")
    flags.DEFINE_enum("generator", "ema", GENERATORS, "GANs of --workdir: score the moving average of G's weights "
                                                      "(ema: what grids and exports use) or the trained weights (raw: "
                                                      "written only to --output_dir, never over the run's eval.json).")
    flags.DEFINE_enum("features", defaults.features, ("domain", "inception"),
                      "Feature network: domain (a small CNN trained on the dataset's labels, cached) or inception.")
    flags.DEFINE_string("inception", defaults.inception, "Inception weights: the TTUR/TF-GAN graph "
                        "classify_image_graph_def.pb or Keras's inception_v3_..._notop.h5. Default: ~/.keras/models.")
    flags.DEFINE_string("cache_dir", defaults.cache_dir, "Cache of domain feature networks. Default: "
                                                         "<data_dir>/zoo_features.")
    flags.DEFINE_string("data_dir", None, "tfds data directory (default: tfds's).")
    flags.DEFINE_string("manual_dir", None, "Folder of dataset files you already have (see README, Datasets).")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Images per batch of the real-data pipeline.")
    flags.DEFINE_string("output_dir", None, "Where eval.json and metrics.jsonl go. Default: --workdir; with --export, "
                                            "--dataset alone or --generator=raw, nothing is written.")


def run_main(argv):
    logging.getLogger().setLevel(logging.INFO)
    try:
        main(argv)
    except UsageError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(run_main)
