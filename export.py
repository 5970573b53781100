"""Exports a trained model as a versioned SavedModel for TF Serving.

    python export.py --workdir=runs/dcgan_shapes --export_dir=exports

writes exports/dcgan/<N>/ with N one more than the largest version already there.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ start-up chatter
from absl import app, flags  # noqa: E402

import zoo  # noqa: E402
from zoo import export as exporting  # noqa: E402
from zoo.errors import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", zoo.Config().workdir, "Run directory written by train.py.")
flags.DEFINE_string("export_dir", "exports", "Base folder: the export goes to <export_dir>/<name>/<version>/.")
flags.DEFINE_enum("checkpoint", "latest", ("latest", "best"),
                  "Which checkpoint: latest, or best (lowest FID during training with --eval_every).")
flags.DEFINE_string("name", None, "Model name in the export path and in TF Serving. Default: the model's.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config, model = exporting.load_trained(FLAGS.workdir, FLAGS.checkpoint)
        path = exporting.export(model, FLAGS.export_dir, FLAGS.name or config.model)
    except UsageError as error:
        sys.exit(f"error: {error}")
    print(f"Exported {config.model} from {FLAGS.workdir} to {path}")


if __name__ == "__main__":
    app.run(main)
