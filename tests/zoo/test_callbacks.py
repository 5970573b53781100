"""Training callbacks read the optimisers' state on several replicas as on one."""
import json
import textwrap

import pytest

# Two logical CPUs stand in for two GPUs. A float rate (and a loss scale) is then a MirroredVariable,
# which float() refuses; a LinearDecay's rate is a tensor. Each of the four optimisers a run can have.
MIRRORED_OPTIMISERS = textwrap.dedent("""
    import json, types
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import zoo
    from zoo import callbacks, optim
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        weights = [keras.Variable(1.0)]
        names = {}
        for lr_decay in (0.0, 0.5):
            for scaled in (False, True):
                adam = optim.adam(zoo.Config(lr_decay=lr_decay, learning_rate=1e-3))
                optimizer = keras.optimizers.LossScaleOptimizer(adam) if scaled else adam
                optimizer.build(weights)
                names[f"{'decay' if lr_decay else 'constant'}{'_scaled' if scaled else ''}_optimizer"] = optimizer
    model = types.SimpleNamespace(optimizer_names=tuple(names), weights=weights, **names)
    logs = {}
    rates = callbacks.LearningRates()
    rates.set_model(model)
    rates.on_epoch_end(0, logs)
    check = callbacks.FailOnNonFinite()
    check.set_model(model)
    print(json.dumps({"logs": logs, "skipped": check._skipped_by_loss_scaler(),
                      "replicas": strategy.num_replicas_in_sync}))
""")


def test_learning_rates_and_the_loss_scale_are_read_from_every_kind_of_optimiser_on_two_replicas(run_script):
    # One device is every training test's case (constant rates; --lr_decay and mixed_float16 in their own).
    result = run_script("-c", MIRRORED_OPTIMISERS, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    # A schedule without a planned length (nothing trained yet) is constant.
    assert report["logs"] == {f"{kind}_learning_rate": pytest.approx(1e-3)
                              for kind in ("constant", "constant_scaled", "decay", "decay_scaled")}
    # Loss scales of 2^15 and finite weights: a non-finite loss now would be a step the scaler skipped.
    assert report["skipped"] is True
