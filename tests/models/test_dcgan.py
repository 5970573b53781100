import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import ema, losses, optim
from zoo.models.dcgan import DCGAN, build_discriminator, build_generator


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_map_latents_to_images_and_images_to_one_logit(image_size, channels):
    generator = build_generator(image_size, channels, latent_dim=8, base_filters=4)
    discriminator = build_discriminator(image_size, channels, base_filters=4)
    images = generator(tf.random.normal([2, 8]))
    assert images.shape == (2, image_size, image_size, channels)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0  # tanh output
    assert discriminator(images).shape == (2, 1)


def test_networks_follow_the_paper_no_pooling_batch_norm_and_leaky_relu():
    kinds = [type(layer).__name__ for layer in build_discriminator(32, 3, 4).layers]
    assert "LeakyReLU" in kinds and not any("Pool" in kind for kind in kinds)
    assert kinds[:3] == ["InputLayer", "Conv2D", "LeakyReLU"]  # no batch norm on D's input layer
    kinds = [type(layer).__name__ for layer in build_generator(32, 3, 8, 4).layers]
    assert "Conv2DTranspose" in kinds and "BatchNormalization" in kinds and "ReLU" in kinds


def test_gan_losses_equal_their_formulas():
    real, fake = np.array([[2.0], [-1.0], [0.3]]), np.array([[-3.0], [0.5], [8.0]])
    expected_d = -np.log(_sigmoid(real[:, 0])) - np.log(1.0 - _sigmoid(fake[:, 0]))
    expected_g = -np.log(_sigmoid(fake[:, 0]))
    np.testing.assert_allclose(losses.discriminator_loss(real, fake), expected_d, rtol=1e-5)
    np.testing.assert_allclose(losses.generator_loss(fake), expected_g, rtol=1e-5)


def test_gan_losses_stay_finite_where_the_probabilities_saturate():
    assert np.isfinite(losses.discriminator_loss(np.array([[-200.0]]), np.array([[200.0]]))).all()
    assert np.isfinite(losses.generator_loss(np.array([[-200.0]]))).all()


@pytest.fixture
def model():
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1)
    dcgan.compile(d_optimizer=optim.adam_from(2e-4, 0.5), g_optimizer=optim.adam_from(2e-4, 0.5))
    return dcgan


def _hand_made_batch():
    rng = np.random.default_rng(0)
    return {"images": tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32)}


def test_train_step_moves_both_networks(model):
    before = [w.numpy().copy() for w in model.generator.trainable_weights + model.discriminator.trainable_weights]
    model.train_step(_hand_made_batch())
    after = model.generator.trainable_weights + model.discriminator.trainable_weights
    changed = [not np.allclose(b, a.numpy()) for b, a in zip(before, after)]
    n_generator = len(model.generator.trainable_weights)
    assert all(changed[:n_generator]) and all(changed[n_generator:])
    assert int(model.step) == 1


def test_train_step_reports_the_textbook_losses_of_its_batch(model):
    batch = _hand_made_batch()
    state = model.seed_generator.state.numpy()
    z_d = optim.latents(model.seed_generator, 4, 8)  # the latents train_step will draw
    z_g = optim.latents(model.seed_generator, 4, 8)
    model.seed_generator.state.assign(state)
    real_logits = model.discriminator(batch["images"], training=True).numpy()[:, 0]
    fake_logits = model.discriminator(model.generator(z_d, training=True), training=True).numpy()[:, 0]
    expected_d = np.mean(-np.log(_sigmoid(real_logits)) - np.log(1 - _sigmoid(fake_logits)))
    generator_before = [w.numpy() for w in model.generator.weights]

    logs = model.train_step(batch)

    # The generator step sees the discriminator after its own step and the generator before it.
    generator_after = [w.numpy() for w in model.generator.weights]
    for w, value in zip(model.generator.weights, generator_before):
        w.assign(value)
    fake_logits = model.discriminator(model.generator(z_g, training=True), training=True).numpy()[:, 0]
    expected_g = np.mean(-np.log(_sigmoid(fake_logits)))
    for w, value in zip(model.generator.weights, generator_after):
        w.assign(value)
    np.testing.assert_allclose(float(logs["d_loss"]), expected_d, rtol=1e-4)
    np.testing.assert_allclose(float(logs["g_loss"]), expected_g, rtol=1e-4)


def test_model_round_trips_through_keras_saving(model, tmp_path):
    import keras
    path = str(tmp_path / "dcgan.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, DCGAN) and loaded.latent_dim == 8
    z = tf.random.normal([2, 8])
    np.testing.assert_allclose(loaded.generator(z), model.generator(z), atol=1e-6)


@pytest.mark.parametrize("image_size,base_filters,expected", [
    (64, 128, [1024, 512, 256, 128]),  # the paper's 64x64 generator
    (32, 32, [128, 64, 32]),
])
def test_base_filters_is_the_width_of_g_last_hidden_and_d_first_convolution(image_size, base_filters, expected):
    generator = build_generator(image_size, 3, latent_dim=8, base_filters=base_filters)
    projection = [layer for layer in generator.layers if type(layer).__name__ == "Reshape"][0]
    convs = [layer.filters for layer in generator.layers if type(layer).__name__ == "Conv2DTranspose"]
    assert [projection.output.shape[-1], *convs[:-1]] == expected
    assert convs[-1] == 3  # the image
    discriminator = build_discriminator(image_size, 3, base_filters=base_filters)
    assert [layer.filters for layer in discriminator.layers if type(layer).__name__ == "Conv2D"] == expected[::-1]


def test_compile_builds_only_the_two_adams(model):
    import keras
    reachable = {id(obj): obj for obj in tf.train.TrackableView(model).descendants()}.values()
    optimizers = [obj for obj in reachable if isinstance(obj, keras.optimizers.Optimizer)]
    assert model.optimizer is None
    assert sorted(map(id, optimizers)) == sorted([id(model.d_optimizer), id(model.g_optimizer)])


@pytest.mark.parametrize("sync", [False, True])
def test_sync_batch_norm_reaches_every_batch_norm(sync):
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, sync_batch_norm=sync)
    norms = [layer for net in (dcgan.generator, dcgan.discriminator) for layer in net.layers
             if type(layer).__name__ == "BatchNormalization"]
    assert len(norms) == 5 and all(layer.synchronized == sync for layer in norms)


def test_discriminator_step_does_not_differentiate_the_generator(model):
    """D's tape sees G's images as constants: no gradient path from D's loss to G's weights."""
    traced = tf.function(model.train_step).get_concrete_function(
        {"images": tf.TensorSpec([4, 32, 32, 3], tf.float32)})
    op_types = [op.type for op in traced.graph.get_operations()]
    assert op_types.count("StopGradient") >= 1


def _trained_for(steps, **options):
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, **options)
    dcgan.compile(d_optimizer=optim.adam_from(2e-3, 0.5), g_optimizer=optim.adam_from(2e-3, 0.5))
    for _ in range(steps):
        dcgan.train_step(_hand_made_batch())
    return dcgan


def test_ema_generator_averages_the_weights_and_is_what_users_see():
    dcgan = _trained_for(3, ema_kimg=1.0, ema_rampup=0.0)  # half-life 1000 images: beta ~ 0.997 a step
    raw, average = dcgan.generator.trainable_weights, dcgan.ema_generator.trainable_weights
    assert not any(np.allclose(r.numpy(), a.numpy()) for r, a in zip(raw, average))
    z = tf.random.normal([4, 8])
    expected = dcgan.ema_generator(z, training=False)
    assert not np.allclose(expected, dcgan.generator(z, training=False))
    np.testing.assert_allclose(dcgan.grid(z), tf.reshape(expected, [2, 2, 32, 32, 3]), atol=1e-6)
    np.testing.assert_allclose(dcgan.serving_endpoints()["serving_default"][0](z)["images"], expected, atol=1e-6)
    np.testing.assert_allclose(dcgan(z), expected, atol=1e-6)


def test_without_ema_users_see_the_raw_generator():
    dcgan = _trained_for(1)
    z = tf.random.normal([4, 8])
    assert dcgan.ema_generator is None
    np.testing.assert_allclose(dcgan.grid(z), tf.reshape(dcgan.generator(z), [2, 2, 32, 32, 3]), atol=1e-6)


def test_ema_generator_is_checkpointed_with_the_model(tmp_path):
    dcgan = _trained_for(2, ema_kimg=1.0)
    path = tf.train.Checkpoint(model=dcgan).save(str(tmp_path / "ckpt"))
    fresh = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, ema_kimg=1.0)
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    for saved, restored in zip(dcgan.ema_generator.weights, fresh.ema_generator.weights):  # moving statistics too
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())


def test_diffaugment_reaches_real_and_fake_with_one_policy_and_g_learns_through_it(monkeypatch):
    calls = []

    def blank(images, policy, seed):
        calls.append((images, policy))
        return images * 0.0  # D sees nothing of any image

    monkeypatch.setattr("zoo.augment.diff_augment", blank)
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, diffaugment="translation,cutout")
    dcgan.compile(d_optimizer=optim.adam_from(2e-4, 0.5), g_optimizer=optim.adam_from(2e-4, 0.5))
    generator_before = [w.numpy().copy() for w in dcgan.generator.trainable_weights]
    batch = _hand_made_batch()
    dcgan.train_step(batch)
    assert len(calls) == 3  # D's real and fake batches, G's fake batch
    assert {policy for _, policy in calls} == {("translation", "cutout")}
    np.testing.assert_array_equal(calls[0][0], batch["images"])
    # Blanked inputs carry no gradient back to G: its weights stay where they were.
    for before, after in zip(generator_before, dcgan.generator.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def _r1_by_definition(discriminator, image, gamma):
    """(gamma / 2) ||grad_x D(x)||^2 for one image x, D alone on it with its moving statistics."""
    x = tf.constant(image[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = discriminator(x, training=False)[0, 0]
    return gamma / 2 * float(tf.reduce_sum(tape.gradient(logit, x) ** 2))


def test_r1_penalty_is_the_mean_over_real_images_of_gamma_over_two_times_each_ones_squared_input_gradient(model):
    gamma, batch = 10.0, _hand_made_batch()
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, r1_gamma=gamma)
    dcgan.compile(d_optimizer=optim.adam_from(2e-4, 0.5), g_optimizer=optim.adam_from(2e-4, 0.5))
    expected = np.mean([_r1_by_definition(dcgan.discriminator, image, gamma) for image in batch["images"].numpy()])
    logs = dcgan.train_step(batch)
    np.testing.assert_allclose(float(logs["r1_penalty"]), expected, rtol=1e-4)
    assert "r1_penalty" not in model.train_step(batch)  # off by default


def test_one_images_r1_term_does_not_depend_on_the_other_images_of_the_batch():
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, r1_gamma=10.0)
    images = _hand_made_batch()["images"].numpy()
    perturbed = images.copy()
    perturbed[1] = -perturbed[1]
    terms = dcgan.r1_penalties(tf.constant(images), {}).numpy()
    terms_perturbed = dcgan.r1_penalties(tf.constant(perturbed), {}).numpy()
    assert terms[1] != pytest.approx(terms_perturbed[1], rel=1e-3)  # the perturbation reaches D
    np.testing.assert_allclose(terms_perturbed[[0, 2, 3]], terms[[0, 2, 3]], rtol=1e-5)


def _d_loss_and_gradients(dcgan, real, fake, jit_compile=False):
    """D's loss and its gradients, traced in a tf.function as in training."""
    @tf.function(jit_compile=jit_compile)
    def compute():
        with tf.GradientTape() as tape:
            loss = dcgan.discriminator_loss(real, fake, {})
        return loss, tape.gradient(loss, dcgan.discriminator.trainable_variables)

    return compute


@pytest.mark.parametrize("jit_compile", [False, True])
def test_r1_batch_shrink_takes_the_penalty_on_the_first_images_only(jit_compile):
    def discriminator(**r1):
        dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, d_norm="layer", **r1)
        dcgan.discriminator.set_weights(reference_weights)
        return dcgan

    reference_weights = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, d_norm="layer",
                              seed=1).discriminator.get_weights()
    real, fake = _hand_made_batch()["images"], -_hand_made_batch()["images"]
    shrunk, plain = discriminator(r1_gamma=10.0, r1_batch_shrink=2), discriminator()
    loss, gradients = _d_loss_and_gradients(shrunk, real, fake, jit_compile)()
    plain_loss, plain_gradients = _d_loss_and_gradients(plain, real, fake)()
    first_two = real[:2]
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(shrunk.r1_penalties(first_two, {}))
    variables = shrunk.discriminator.trainable_variables
    penalty_gradients = [tf.zeros(v.shape) if g is None else g  # the last layer's bias does not reach grad_x D
                         for v, g in zip(variables, tape.gradient(penalty, variables))]
    np.testing.assert_allclose(float(loss), float(plain_loss + penalty), rtol=1e-5)
    np.testing.assert_allclose(float(shrunk.r1_tracker.result()), float(penalty), rtol=1e-5)
    assert float(penalty) != pytest.approx(float(tf.reduce_mean(shrunk.r1_penalties(real, {}))), rel=1e-3)
    for gradient, plain_gradient, penalty_gradient in zip(gradients, plain_gradients, penalty_gradients):
        np.testing.assert_allclose(gradient.numpy(), (plain_gradient + penalty_gradient).numpy(), rtol=1e-3, atol=1e-6)


def test_r1_puts_no_conditional_in_d_step_where_xla_on_this_cpu_ran_d_14x_slower():
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, r1_gamma=10.0, r1_batch_shrink=2)
    real = _hand_made_batch()["images"]
    graph = _d_loss_and_gradients(dcgan, real, -real).get_concrete_function().graph
    op_types = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        op_types.update(node.op for node in function.node_def)
    assert not op_types & {"If", "StatelessIf", "While", "StatelessWhile"}, sorted(op_types)


def _batch_of(size):
    return {"images": tf.constant(np.random.default_rng(size).uniform(-1, 1, (size, 32, 32, 3)), tf.float32)}


def test_ema_ramp_up_counts_the_images_seen_across_a_resume_with_another_batch_size(tmp_path, monkeypatch):
    seen_by_decay = []
    decay = ema.decay
    monkeypatch.setattr("zoo.ema.decay", lambda images_seen, *args: (
        seen_by_decay.append(int(images_seen)), decay(images_seen, *args))[1])

    def fresh():
        dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1, ema_kimg=1.0)
        dcgan.compile(d_optimizer=optim.adam_from(2e-4, 0.5), g_optimizer=optim.adam_from(2e-4, 0.5))
        return dcgan

    first = fresh()
    for _ in range(2):
        first.train_step(_batch_of(8))
    path = tf.train.Checkpoint(model=first).save(str(tmp_path / "ckpt"))
    resumed = fresh()
    tf.train.Checkpoint(model=resumed).restore(path).assert_existing_objects_matched()
    resumed.train_step(_batch_of(16))
    assert int(resumed.images_seen) == 8 + 8 + 16
    assert seen_by_decay == [8, 16, 32]  # what the ramp-up read at each step, this step's images included


def test_a_step_the_loss_scaler_skips_still_counts_as_a_step():
    # mixed_float16's LossScaleOptimizer leaves `iterations` alone on a skipped step; the run's step
    # (data position, epochs, checkpoint numbers) must count it all the same. An infinite scale overflows
    # whatever the weights (at 1e38 a gradient under 3.4 did not, and the test failed once under another seed).
    dcgan = DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4, seed=1)
    overflowing = {name: keras.optimizers.LossScaleOptimizer(optim.adam_from(2e-4, 0.5), initial_scale=float("inf"))
                   for name in DCGAN.optimizer_names}
    dcgan.compile(**overflowing)
    dcgan.train_step(_hand_made_batch())
    assert int(dcgan.g_optimizer.iterations) == 0  # the scaler did skip it
    assert int(dcgan.step) == 1


@pytest.mark.parametrize("d_norm,kind,count", [("batch", "BatchNormalization", 2), ("layer", "LayerNormalization", 2),
                                               ("none", None, 0)])
def test_d_norm_chooses_the_normalisation_of_d_hidden_convolutions(d_norm, kind, count):
    kinds = [type(layer).__name__ for layer in DCGAN(image_size=32, channels=3, latent_dim=8, base_filters=4,
                                                     d_norm=d_norm).discriminator.layers]
    norms = [k for k in kinds if "Normalization" in k]
    assert len(norms) == count and set(norms) <= {kind}
    assert kinds[:3] == ["InputLayer", "Conv2D", "LeakyReLU"]  # never on the input layer
