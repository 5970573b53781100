"""What a run leaves in its work directory each epoch, as Keras callbacks."""
import json
import math
import os
import time

import keras
import tensorflow as tf

from zoo import images


class FailOnNonFinite(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or infinite, before it is checkpointed."""

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                raise FloatingPointError(
                    f"{name} is {float(value)} at batch {batch}: training diverged; the last "
                    f"checkpoint is intact (try a lower --learning_rate or --precision=float32)")


class SampleGrid(keras.callbacks.Callback):
    """A PNG grid and a TensorBoard image from the same fixed inputs every epoch."""

    def __init__(self, inputs, directory, summary_dir):
        super().__init__()
        self.inputs, self.directory = inputs, directory
        self.writer = tf.summary.create_file_writer(summary_dir)
        os.makedirs(directory, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        picture = images.tile(self.model.grid(self.inputs))
        images.save_png(picture, os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png"))
        with self.writer.as_default():
            tf.summary.image("samples", picture[None], step=epoch + 1)
        self.writer.flush()


class MetricsLog(keras.callbacks.Callback):
    """Appends one JSON line of metrics per epoch: never rewritten, so resumes add to it."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "step": int(self.model.step.numpy()), "seconds": round(time.time() - self.start, 2),
                  **{name: float(value) for name, value in (logs or {}).items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class Checkpoint(keras.callbacks.Callback):
    """Saves weights, optimiser state and the epoch count after every epoch."""

    def __init__(self, manager, epoch, keras_path):
        super().__init__()
        self.manager, self.epoch, self.keras_path = manager, epoch, keras_path

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        self.model.save(self.keras_path)
