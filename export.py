"""Exports a trained model as a versioned SavedModel for TF Serving.

    python export.py --workdir=runs/dcgan_shapes --export_dir=exports

writes exports/dcgan/<N>/ with N one more than the largest version already there (exports
running at once into one folder each get a version of their own), and
exports/models.config listing every model under exports/ for TF Serving.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ start-up chatter
from absl import app, flags  # noqa: E402

import zoo  # noqa: E402
from zoo import cli  # noqa: E402
from zoo import export as exporting  # noqa: E402
from zoo.errors import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", zoo.Config().workdir, "Run directory written by train.py.")
flags.DEFINE_string("export_dir", "exports", "Base folder: the export goes to <export_dir>/<name>/<version>/.")
flags.DEFINE_enum("checkpoint", "latest", ("latest", "best"),
                  "Which checkpoint: latest, or best (lowest FID during training with --eval_every).")
flags.DEFINE_string("name", None, "Model name in the export path and in TF Serving: letters, digits, '_', '-' "
                                  "and '.', starting with a letter or digit. Default: the model's.")
flags.DEFINE_integer("serving_batch_max", exporting.SERVING_BATCH_MAX,
                     "Largest batch a request may ask for (rows of z, labels, images; num_images); larger "
                     "requests fail with InvalidArgument. Bounds the memory one request takes.", lower_bound=1)
flags.DEFINE_string("serving_root", "/models",
                    "Where TF Serving sees --export_dir: the base_path prefix in <export_dir>/models.config.")


def main(argv):
    del argv  # cli.parse_flags refuses positional arguments
    try:
        if FLAGS.name is not None:
            exporting.check_name(FLAGS.name)
        cli.writable_folder(FLAGS.export_dir, "export_dir")
        trained = exporting.load_trained(FLAGS.workdir, FLAGS.checkpoint)
        path = exporting.export(trained, FLAGS.export_dir, FLAGS.name or trained.config.model,
                                FLAGS.serving_batch_max, FLAGS.serving_root)
    except UsageError as error:
        cli.exit_with(error)
    print(f"Exported {trained.config.model} from {FLAGS.workdir} to {path}; TF Serving: "
          f"{os.path.join(FLAGS.export_dir, exporting.SERVING_CONFIG)}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
