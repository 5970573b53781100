"""What a run leaves in its work directory each epoch, as Keras callbacks."""
import json
import logging
import math
import os
import signal
import threading
import time

import keras
import tensorflow as tf

from zoo import checkpoints, files, images
from zoo.errors import Diverged


def _value(variable):
    """A scalar variable's value as a float; float() refuses a MirroredVariable (several replicas)."""
    return float(keras.ops.convert_to_numpy(variable))


class FailOnNonFinite(keras.callbacks.Callback):
    """Stops at the first step whose loss is NaN or infinite, before anything saves its weights.

    Under loss scaling (mixed_float16) a non-finite loss is a step the scaler skipped, not
    divergence, until the scale has fallen below 1: then even unscaled gradients overflow.
    """

    def __init__(self, last_saved=lambda: None):
        super().__init__()
        self.last_saved = last_saved  # () -> the newest checkpoint's path, for the message

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)) and not self._skipped_by_loss_scaler():
                step, executed = int(self.model.step.numpy()), self.model.steps_per_execution
                at = f"at step {step}" if executed == 1 else f"in steps {step - executed + 1}-{step}"
                raise Diverged(f"training diverged {at}: {name} is {float(value)}; "
                               f"the last good checkpoint stays the latest ({self.last_saved()}); try a lower "
                               f"--learning_rate or --precision=float32")

    def _skipped_by_loss_scaler(self):
        scales = [_value(optimizer.dynamic_scale) for optimizer in
                  (getattr(self.model, name) for name in self.model.optimizer_names)
                  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer)]
        return bool(scales) and min(scales) >= 1 and checkpoints.all_finite(self.model)


class SampleGrid(keras.callbacks.Callback):
    """A PNG grid and a TensorBoard image from the same fixed inputs every epoch."""

    def __init__(self, inputs, directory, summary_dir):
        super().__init__()
        self.inputs, self.directory = inputs, directory
        self.writer = tf.summary.create_file_writer(summary_dir)
        os.makedirs(directory, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:
            return  # stopped mid-epoch: the grid comes at the epoch's real end
        self.draw(epoch + 1)

    def path(self, epochs_done):
        return os.path.join(self.directory, f"epoch_{epochs_done:04d}.png")

    def draw(self, epochs_done):
        picture = images.tile(self.model.grid(self.inputs))
        images.save_png(picture, self.path(epochs_done))
        with self.writer.as_default():
            tf.summary.image("samples", picture[None], step=epochs_done)
        self.writer.flush()


class LearningRates(keras.callbacks.Callback):
    """Adds each optimiser's rate at the epoch's end to its logs (metrics.jsonl, TensorBoard), as
    `d_learning_rate`, `g_learning_rate` (GANs) or `learning_rate`: a --lr_decay run shows its fall.
    Keras logs only `model.optimizer`'s, which the GANs do not have."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name in self.model.optimizer_names:
            logs[name.replace("optimizer", "learning_rate")] = _value(getattr(self.model, name).learning_rate)


class MetricsLog(keras.callbacks.Callback):
    """Appends one JSON line of metrics per epoch, and one when a signal stops the run mid-epoch.

    It writes before the Checkpoint callback saves, and a resumed run first drops the lines of
    steps after the checkpoint it restored (`forget_after`): each line is in the file exactly once.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "step": int(self.model.step.numpy()), "seconds": round(time.time() - self.start, 2),
                  **{name: float(value) for name, value in (logs or {}).items()}}
        if self.model.stop_training:
            record["stopped"] = True  # the epoch's steps so far; the rest follow after the resume
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    @staticmethod
    def forget_after(path, step):
        """Drops the lines of steps after `step`: a resumed run trains them, and logs them, again."""
        if not os.path.exists(path):
            return
        kept = []
        with open(path) as f:
            for line in f:
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:  # only a last line cut short by a full disk can be
                    logging.warning("Dropping an unreadable line of %s: %r", path, line[:80])
        files.write_text(path, "".join(kept))


class StopOnSignal(keras.callbacks.Callback):
    """SIGTERM or SIGINT: stop after the current step (Checkpoint then saves); a second SIGINT quits at once.

    A context manager around `fit`, so the handlers cover every fit of a run and are restored after.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        super().__init__()
        self.signals, self.received = signals, None

    def __enter__(self):
        main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
        self.previous = {number: signal.signal(number, self._handle) for number in self.signals if main_thread}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame):
        if self.received is not None and number == signal.SIGINT:
            os._exit(128 + number)  # the shell's code for death by SIGINT, without saving
        self.received = signal.Signals(number).name
        logging.warning("%s: stopping after this step, once a checkpoint is saved%s", self.received,
                        " (Ctrl-C again quits at once, unsaved)" if number == signal.SIGINT else "")

    def on_train_batch_end(self, batch, logs=None):
        if self.received:
            self.model.stop_training = True


class Checkpoint(keras.callbacks.Callback):
    """Saves the run every `interval` (steps or seconds), at each epoch's end, and when stopped by a signal.

    Never saves non-finite weights. The first save of a process writes config.json first, so a
    checkpoint never exists without the flags that made it. model.keras is rewritten each epoch.
    """

    def __init__(self, manager, progress, *, steps_per_epoch, batch_size, interval, before_first_save,
                 keras_path, agree=lambda due: due):
        super().__init__()
        self.manager, self.progress = manager, progress
        self.steps_per_epoch, self.batch_size = steps_per_epoch, batch_size
        self.every_steps, self.every_seconds = interval
        self.before_first_save, self.keras_path = before_first_save, keras_path
        self.keras_epoch = None  # the epoch whose end this process wrote model.keras at
        self.agree = agree  # multi-worker: every worker must decide alike whether to save
        self.last_saved = manager.latest_checkpoint
        self.last_save_time = time.monotonic()

    def on_train_begin(self, logs=None):
        self.fit_start_step, self.fit_start_examples = int(self.model.step.numpy()), int(self.progress.examples)
        self.last_saved_step = self.fit_start_step  # restored, or 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start_step = int(self.model.step.numpy()) - int(self.progress.epoch_steps)

    def on_train_batch_end(self, batch, logs=None):
        step = self._record()
        if self.model.stop_training or step - self.epoch_start_step >= self.steps_per_epoch:
            return  # on_epoch_end saves
        if self.every_steps:
            due = step // self.every_steps > self.last_saved_step // self.every_steps
        else:
            due = self.agree(time.monotonic() - self.last_save_time >= self.every_seconds)
        if due:
            self.save(step)

    def on_epoch_end(self, epoch, logs=None):
        step = self._record()
        complete = step - self.epoch_start_step >= self.steps_per_epoch
        if complete:
            self.progress.epoch.assign(epoch + 1)
            self.progress.epoch_steps.assign(0)
        self.save(step)
        if complete and not self.model.stop_training:
            self.save_keras(epoch + 1)

    def save_keras(self, epochs_done):
        with files.written_aside(self.keras_path) as partial:
            self.model.save(partial)
        self.keras_epoch = epochs_done

    def _record(self):
        """Brings the progress counters up to the model's step; returns the step."""
        step = int(self.model.step.numpy())
        self.progress.epoch_steps.assign(step - self.epoch_start_step)
        self.progress.examples.assign(self.fit_start_examples + (step - self.fit_start_step) * self.batch_size)
        return step

    def write_config(self):
        """config.json, before the first checkpoint of this process."""
        if self.before_first_save:
            self.before_first_save()
            self.before_first_save = None

    def save(self, step):
        if step == self.last_saved_step and self.last_saved:
            return  # saved at this step already; saving again would rewrite its files in place
        if not checkpoints.all_finite(self.model):
            raise Diverged(f"training diverged by step {step}: the weights are not finite; the last good "
                           f"checkpoint stays the latest ({self.last_saved})")
        self.write_config()
        self.last_saved = self.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        self.last_save_time = time.monotonic()


class SaveOnPreemption(keras.callbacks.Callback):
    """Multi-worker: after each step, TensorFlow's PreemptionCheckpointHandler saves on every worker
    once any of them got SIGTERM, then calls its exit_fn (which raises Interrupted).

    Its saves bypass the Checkpoint callback, so config.json is written when training starts: a
    checkpoint never exists without the flags that made it."""

    def __init__(self, handler, saver):
        super().__init__()
        self.handler, self.saver = handler, saver

    def on_train_begin(self, logs=None):
        self.saver.write_config()

    def on_train_batch_end(self, batch, logs=None):
        self.handler.save_checkpoint_if_preempted(checkpoint_number=int(self.model.step.numpy()))
