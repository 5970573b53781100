"""Device policy: which strategy, precision and compiler a run uses.

`--precision=auto` and `--xla` left unset pick the fastest configuration measured on
the device type (`python -m zoo.benchmark`, docs/benchmarks.md): on a CPU, float32
with XLA; on a GPU, XLA with mixed_bfloat16 where the GPU computes in bfloat16
natively (compute capability 8.0 and up, no loss scaling needed), else mixed_float16.
Flags override either way.
"""
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import tempfile

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
    loss_scaling: bool = None  # None: where the precision needs it (mixed_float16)

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync

    def steps_per_execution(self, requested, steps_per_epoch=None):
        """Steps per host call: the largest divisor of `steps_per_epoch` up to `requested`.

        Keras runs whole executions, so an epoch of 10 steps at 4 per execution would run 12.
        On several replicas 1: Keras 3.15's multi-step loop fails there (a merge_call inside
        its tf.cond: keras-team/keras#19246, "You must feed a value for placeholder").
        """
        if self.replicas > 1:
            return 1
        if not steps_per_epoch:
            return requested
        return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)

    def wrap_optimizer(self, optimizer):
        """float16 gradients underflow without loss scaling; bfloat16 and float32 need none."""
        if self.precision == "mixed_float16" if self.loss_scaling is None else self.loss_scaling:
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


def auto_settings(gpu_compute_capability=None):
    """(precision, XLA) for auto: the fastest measured per device type; None: no GPU.

    CPU: XLA makes the float32 step 1.5-1.9x faster (docs/benchmarks.md, quiet 2-core CPU).
    mixed_bfloat16 with XLA is slower for the GANs and faster for the VAE only, whose test
    likelihood in bfloat16 is unmeasured; without XLA, oneDNN has no native bfloat16 on AVX2
    and it is 7x slower.
    """
    if gpu_compute_capability is None:
        return "float32", True
    return ("mixed_bfloat16" if tuple(gpu_compute_capability) >= (8, 0) else "mixed_float16"), True


def _gpu_compute_capability():
    """The first GPU's (major, minor), or None without a GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))


def resolve(precision="auto", xla=None, strategy="auto"):
    """Builds the policy and sets Keras's global dtype policy, before any model is built."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    auto_precision, auto_xla = auto_settings(_gpu_compute_capability())
    precision = auto_precision if precision == "auto" else precision
    keras.mixed_precision.set_dtype_policy(precision)
    built = make_strategy(strategy)
    if xla is None:
        # XLA cannot reach a mirrored variable on a second logical CPU (DESIGN.md), and the step's
        # cross-replica merge_calls (optimiser, EMA) have never run under XLA on several GPUs here:
        # auto leaves it off on several replicas until a GPU machine measures it (--xla to try).
        xla = auto_xla and built.num_replicas_in_sync == 1
    return DevicePolicy(strategy=built, precision=precision, jit_compile=xla)



# Multi-worker runs: who writes where, and saving together.

def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """Only the chief writes into the run directory (TensorFlow's multi-worker guide)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


@contextlib.contextmanager
def worker_directory(workdir, chief):
    """The run directory for the chief; for another worker a temporary one, removed afterwards.

    Every worker takes part in saving (the checkpoint's collectives), only the chief's files are kept.
    """
    if chief:
        yield workdir
        return
    temporary = tempfile.mkdtemp(prefix="zoo-worker-")
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def agreement(strategy):
    """due -> whether to save now. Workers' clocks differ, and all must save at one step: in a
    multi-worker run they save when any of them is due (an all-reduce); elsewhere, when due."""
    if not is_multi_worker(strategy):
        return lambda due: due

    def agree(due):
        def replica_fn():
            return tf.distribute.get_replica_context().all_reduce("SUM", tf.constant(float(due)))  # MAX: no such op

        return float(strategy.experimental_local_results(strategy.run(replica_fn))[0]) > 0

    return agree


def stop_signals(strategy):
    """The signals the training loop turns into a save and a clean stop. In a multi-worker run
    TensorFlow's PreemptionCheckpointHandler takes SIGTERM, so that all workers save together."""
    return () if is_multi_worker(strategy) else (signal.SIGTERM, signal.SIGINT)
