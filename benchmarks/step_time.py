"""Training-step time of each model, per device policy, on synthetic batches.

    python benchmarks/step_time.py --model=dcgan --image_size=32 --base_filters=32,64

Prints one line per setting: milliseconds per step and images per second.
"""
import itertools
import time

from absl import app, flags
import tensorflow as tf

import zoo
from zoo import device, training

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "dcgan", "Registered model name.")
flags.DEFINE_integer("image_size", 32, "Image side.")
flags.DEFINE_integer("channels", 3, "Image channels.")
flags.DEFINE_integer("batch_size", 64, "Global batch.")
flags.DEFINE_list("base_filters", ["32", "64"], "Network widths to time.")
flags.DEFINE_list("precision", ["float32", "mixed_bfloat16"], "Precisions to time.")
flags.DEFINE_list("xla", ["false", "true"], "XLA settings to time.")
flags.DEFINE_integer("steps", 20, "Timed steps, after 3 warm-up steps.")


class _Synthetic:
    name, channels, num_classes = "synthetic", None, 10


def main(argv):
    del argv
    source = _Synthetic()
    source.channels = FLAGS.channels
    batch = {"images": tf.random.uniform([FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, FLAGS.channels], -1, 1),
             "labels": tf.random.uniform([FLAGS.batch_size], 0, 10, tf.int32)}
    for width, precision, xla in itertools.product(FLAGS.base_filters, FLAGS.precision, FLAGS.xla):
        config = zoo.Config(model=FLAGS.model, image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
                            base_filters=int(width), precision=precision, xla=xla == "true")
        policy = device.resolve(config.precision, config.xla, "default")
        model = training.build_model(config, source, policy)
        model.make_train_function()
        step = model.train_function
        data = iter(tf.data.Dataset.from_tensors(batch).repeat())
        for _ in range(3):
            step(data)
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            logs = step(data)
        float(next(iter(logs.values())))
        seconds = (time.perf_counter() - start) / FLAGS.steps
        print(f"{FLAGS.model} {FLAGS.image_size}px width={width} {precision} xla={xla}: "
              f"{seconds * 1000:.0f} ms/step, {FLAGS.batch_size / seconds:.0f} images/s", flush=True)


if __name__ == "__main__":
    app.run(main)
