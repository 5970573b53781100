"""Device policy: CPU defaults, and the GPU paths (mixed precision, XLA, MirroredStrategy) run on CPU."""
import json
import textwrap

import keras
import pytest

from zoo import device

MIRRORED_STEP = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np, tensorflow_datasets as tfds, zoo
    from zoo import optim
    config = zoo.Config(workdir=sys.argv[1], batch_size=8, epochs=1, steps_per_epoch=2, latent_dim=8, base_filters=4,
                        num_samples=4, strategy=sys.argv[4], precision=sys.argv[2], xla=sys.argv[3] == "xla")
    with tfds.testing.mock_data(num_examples=16):
        model = zoo.train(config)
    strategy = model.distribute_strategy
    per_replica = strategy.run(lambda: optim.latents(model.seed_generator, 2, 8))
    draws = [t.numpy() for t in strategy.experimental_local_results(per_replica)] * 2
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "step": int(model.step.numpy()),
                      "optimizer": type(model.g_optimizer).__name__,
                      "latents_differ": not np.allclose(draws[0], draws[-1])}))
""")


def test_cpu_defaults_are_float32_without_xla():
    policy = device.resolve()
    assert (policy.precision, policy.jit_compile, policy.replicas) == ("float32", False, 1)
    assert keras.mixed_precision.dtype_policy().name == "float32"


def test_mixed_float16_scales_the_loss_and_bfloat16_does_not():
    try:
        assert isinstance(device.resolve("mixed_float16").wrap_optimizer(keras.optimizers.Adam()),
                          keras.optimizers.LossScaleOptimizer)
        assert isinstance(device.resolve("mixed_bfloat16").wrap_optimizer(keras.optimizers.Adam()),
                          keras.optimizers.Adam)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_two_replicas_train_with_distinct_noise(run_script, tmp_path):
    result = run_script("-c", MIRRORED_STEP, str(tmp_path / "run"), "float32", "noxla", "mirrored")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"replicas": 2, "step": 2, "optimizer": "Adam", "latents_differ": True}


def test_mixed_float16_under_xla_trains_with_loss_scaling(run_script, tmp_path):
    # XLA cannot place a mirrored variable of a second *logical CPU*; on GPUs each replica
    # compiles on its own device, so XLA with MirroredStrategy is left to machines that have them.
    result = run_script("-c", MIRRORED_STEP, str(tmp_path / "run"), "mixed_float16", "xla", "default")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["replicas"], report["step"], report["optimizer"]) == (1, 2, "LossScaleOptimizer")
