"""Device policy: CPU defaults, and the GPU paths (mixed precision, XLA, MirroredStrategy) run on CPU."""
import json
import textwrap
import types

import keras
import pytest

import zoo
from zoo import device

MIRRORED_STEP = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np, tensorflow_datasets as tfds, zoo
    from zoo import optim
    config = zoo.Config(workdir=sys.argv[1], batch_size=8, epochs=1, steps_per_epoch=2, latent_dim=8, base_filters=4,
                        num_samples=4, strategy=sys.argv[4], precision=sys.argv[2], xla=sys.argv[3] == "xla",
                        r1_gamma=1.0, r1_batch_shrink=2)  # R1 on half of each replica's images
    with tfds.testing.mock_data(num_examples=16):
        model = zoo.train(config)
    strategy = model.distribute_strategy
    per_replica = strategy.run(lambda: optim.latents(model.seed_generator, 2, 8))
    draws = [t.numpy() for t in strategy.experimental_local_results(per_replica)] * 2
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "step": int(model.step.numpy()),
                      "optimizer": type(model.g_optimizer).__name__,
                      "latents_differ": not np.allclose(draws[0], draws[-1]),
                      "r1_penalty_positive": bool(0 < float(model.r1_tracker.result()) < np.inf),
                      "r1_batch_shrink": model.r1_batch_shrink}))
""")


def test_cpu_defaults_are_the_fastest_measured_float32_setting_xla():
    policy = device.resolve()
    assert (policy.precision, policy.jit_compile, policy.replicas) == ("float32", True, 1)
    assert keras.mixed_precision.dtype_policy().name == "float32"


@pytest.mark.parametrize("capability, precision", [((7, 0), "mixed_float16"), ((7, 5), "mixed_float16"),
                                                   ((8, 0), "mixed_bfloat16"), ((9, 0), "mixed_bfloat16")])
def test_gpu_defaults_are_xla_with_bfloat16_where_native_else_float16(capability, precision):
    assert device.auto_settings(capability) == (precision, True)


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
    assert report == {"replicas": 2, "step": 2, "optimizer": "Adam", "latents_differ": True,
                      "r1_penalty_positive": True, "r1_batch_shrink": 2}


def test_mixed_float16_under_xla_trains_with_loss_scaling(run_script, tmp_path):
    # XLA cannot place a mirrored variable of a second *logical CPU*; on GPUs each replica
    # compiles on its own device, so XLA with MirroredStrategy is left to machines that have them.
    result = run_script("-c", MIRRORED_STEP, str(tmp_path / "run"), "mixed_float16", "xla", "default")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["replicas"], report["step"], report["optimizer"], report["r1_penalty_positive"]) == (
        1, 2, "LossScaleOptimizer", True)


@pytest.mark.parametrize("requested, steps, replicas, expected", [
    (16, None, 1, 16), (16, 2, 1, 2), (16, 156, 1, 13), (4, 10, 1, 2), (16, 937, 1, 1), (16, 64, 2, 1)])
def test_steps_per_execution_divides_the_epoch_and_is_one_on_several_replicas(requested, steps, replicas, expected):
    policy = types.SimpleNamespace(replicas=replicas)
    assert device.DevicePolicy.steps_per_execution(policy, requested, steps) == expected


def test_a_diverging_run_stops_with_several_steps_per_execution(tiny_config, mock_tfds, tmp_path):
    config = tiny_config(tmp_path / "run", steps_per_execution=4, steps_per_epoch=4, batch_size=4,
                         learning_rate=1e38, model="vae")
    with pytest.raises(FloatingPointError, match="is (nan|inf)"):
        zoo.train(config)
