"""Exports a trained model as a versioned SavedModel for TF Serving.

    python export.py --workdir=runs/dcgan_shapes --export_dir=exports

writes exports/dcgan/<N>/ with N one more than the largest version already there;
exports running at once into one folder each get a version of their own.
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
flags.DEFINE_string("name", None, "Model name in the export path and in TF Serving: letters, digits, '_', '-' "
                                  "and '.', starting with a letter or digit. Default: the model's.")


def main(argv):
    del argv  # cli.parse_flags refuses positional arguments
    try:
        if FLAGS.name is not None:
            exporting.check_name(FLAGS.name)
        cli.writable_folder(FLAGS.export_dir, "export_dir")
        config, model = exporting.load_trained(FLAGS.workdir)
        path = exporting.export(model, FLAGS.export_dir, FLAGS.name or config.model)
    except UsageError as error:
        cli.exit_with(error)
    print(f"Exported {config.model} from {FLAGS.workdir} to {path}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
