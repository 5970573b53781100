"""Device policy: which strategy, precision and compiler a run uses.

On a GPU the fast settings (XLA, mixed_float16) are the defaults; on a CPU,
float32 without XLA. Flags override either way.
"""
import dataclasses
import json
import os

import keras
import tensorflow as tf

from zoo.errors import UsageError

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class DevicePolicy:
    strategy: tf.distribute.Strategy
    precision: str
    jit_compile: bool

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync

    def wrap_optimizer(self, optimizer):
        """float16 gradients underflow without loss scaling; bfloat16 and float32 need none."""
        if self.precision == "mixed_float16":
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer


def _multi_worker():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(tasks) for tasks in cluster.values()) > 1


def make_strategy(name):
    if name == "auto":
        name = ("multi_worker" if _multi_worker() else
                "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default")
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        # Without GPUs, mirror over the logical CPUs (how the GPU path is tested on CPU).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def resolve(precision="auto", xla=None, strategy="auto"):
    """Builds the policy and sets Keras's global dtype policy, before any model is built."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if precision == "auto":
        precision = "mixed_float16" if on_gpu else "float32"
    keras.mixed_precision.set_dtype_policy(precision)
    return DevicePolicy(strategy=make_strategy(strategy), precision=precision,
                        jit_compile=on_gpu if xla is None else xla)
