"""Convolutional variational autoencoder (Kingma and Welling, 2014).

Encoder: stride-2 convolutions to the mean and log-variance of a diagonal
Gaussian q(z|x). Decoder: a dense projection and stride-2 transposed
convolutions to the per-pixel parameters of p(x|z): Bernoulli logits of pixels
in [0, 1], or the means and log-scales of a logistic discretised to the 256
pixel values. No batch norm: it would make an image's ELBO depend on the rest
of its batch and differ between training and evaluation.

Loss: the negative ELBO of each image, -log p(x|z) summed over every pixel and
channel plus beta * KL(q(z|x) || N(0, I)) summed over the latent dimensions,
averaged over the batch. (A mean over pixels beside a sum over latents, as in
many tutorials, weighs the KL hundreds of times too much.)

    python train.py --model=vae --dataset=shapes    # 20 epochs, 9280 steps: about 11 min on a quiet 2-core
        # CPU (72 ms a step); after 4176 steps (5 min) test -ELBO 4.99 bits/dim (docs/results.md)
    python train.py --model=vae --dataset=fashion_mnist --epochs=5 --iw_samples=100
        # 14 min; test -ELBO 326.9 nats/image, importance-weighted 322.5
"""
import math

import keras
import tensorflow as tf

from zoo import losses, optim
from zoo.signatures import image_outputs, seeded_normal
from zoo.registry import MODELS

MIN_LOG_SCALE = -7.0  # PixelCNN++'s floor: narrower logistics give no more likelihood, only overflow
# Logistics start some 6 grey levels wide. From log-scale 0, wider than the whole pixel range,
# the scales take most of a short run to shrink (shapes, 500 steps: 15.9k nats, not 13.5k).
INITIAL_LOG_SCALE = -3.0
IW_CHUNK = 32  # importance samples decoded in one batch: 32 x batch images at a time


def build_encoder(image_size, channels, latent_dim, base_filters):
    """image in [-1, 1] -> (mean, log_variance) of q(z | x)."""
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for i in range(int(math.log2(image_size // 4))):
        x = keras.layers.Conv2D(base_filters * 2 ** i, 4, strides=2, padding="same", activation="silu")(x)
    x = keras.layers.Flatten()(x)
    mean = keras.layers.Dense(latent_dim, dtype="float32", name="mean")(x)
    log_variance = keras.layers.Dense(latent_dim, dtype="float32", name="log_variance")(x)
    return keras.Model(images, [mean, log_variance], name="encoder")


def build_decoder(image_size, initial_parameters, latent_dim, base_filters):
    """z -> maps of p(x | z)'s per-pixel parameters, one per entry of `initial_parameters` (their start)."""
    widths = [base_filters * 2 ** i for i in reversed(range(int(math.log2(image_size // 4))))]
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(4 * 4 * widths[0], activation="silu")(z)
    x = keras.layers.Reshape((4, 4, widths[0]))(x)
    for width in widths[1:]:
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="silu")(x)
    parameters = keras.layers.Conv2DTranspose(
        len(initial_parameters), 4, strides=2, padding="same", dtype="float32", name="parameters",
        bias_initializer=keras.initializers.Constant(initial_parameters))(x)
    return keras.Model(z, parameters, name="decoder")


@MODELS.register("vae")
@keras.saving.register_keras_serializable(package="zoo")
class VAE(keras.Model):
    """A VAE trained on the negative ELBO; its test-set likelihood is measured after training."""

    needs_labels = False
    # Adam's usual settings suit the VAE's smooth objective; the GANs' beta_1=0.5 does not help it.
    config_defaults = {"learning_rate": 1e-3, "beta_1": 0.9, "latent_dim": 32}
    optimizer_names = ("optimizer",)
    evaluations = ("test_likelihood",)

    def __init__(self, image_size=32, channels=3, latent_dim=32, base_filters=32, likelihood="logistic",
                 kl_weight=1.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.channels, self.latent_dim = image_size, channels, latent_dim
        self.base_filters, self.likelihood, self.kl_weight, self.seed = base_filters, likelihood, kl_weight, seed
        initial_parameters = {"bernoulli": [0.0] * channels,  # logits
                              "logistic": [0.0] * channels + [INITIAL_LOG_SCALE] * channels}[likelihood]
        self.encoder = build_encoder(image_size, channels, latent_dim, base_filters)
        self.decoder = build_decoder(image_size, initial_parameters, latent_dim, base_filters)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.steps_trained = optim.step_counter()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.built = True  # `fit` must not trace `call` on a data batch

    @classmethod
    def from_run(cls, config, source):
        likelihood = config.likelihood
        if likelihood == "auto":  # grey levels of MNIST-like data: Bernoulli, the field's standard
            likelihood = "bernoulli" if source.channels == 1 else "logistic"
        return cls(image_size=config.image_size, channels=source.channels, latent_dim=config.latent_dim,
                   base_filters=config.base_filters, likelihood=likelihood, kl_weight=config.kl_weight,
                   seed=config.seed)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim, "base_filters": self.base_filters, "likelihood": self.likelihood,
                "kl_weight": self.kl_weight, "seed": self.seed}

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.trainable_variables)  # in the strategy scope, as the GANs' (DESIGN.md)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    @property
    def step(self):
        return self.steps_trained

    def call(self, images, training=False):
        return self.reconstruct(images, training=training)

    def reconstruction_nll(self, images, z, training=False):
        """-log p(x | z) of each image, summed over pixels and channels."""
        parameters = self.decoder(z, training=training)
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll((images + 1.0) / 2.0, parameters)
        mean, log_scale = tf.split(parameters, 2, axis=-1)
        return losses.discretized_logistic_nll(images, mean, tf.maximum(log_scale, MIN_LOG_SCALE))

    def decode(self, z, training=False):
        """The mean of p(x | z), as images in [-1, 1]."""
        parameters = self.decoder(z, training=training)
        if self.likelihood == "bernoulli":
            return 2.0 * tf.sigmoid(parameters) - 1.0
        return tf.clip_by_value(tf.split(parameters, 2, axis=-1)[0], -1.0, 1.0)

    def reconstruct(self, images, training=False):
        """Decodes the posterior mean: the deterministic reconstruction."""
        return self.decode(self.encoder(images, training=training)[0], training=training)

    def negative_elbo(self, images, noise, training=False):
        """Per-example terms of -ELBO = -log p(x | z) + beta * KL(q(z|x) || N(0, I)), z = mean + sigma * noise.

        One z per image estimates the expected reconstruction term without bias; the KL is exact.
        """
        mean, log_variance = self.encoder(images, training=training)
        z = mean + tf.exp(0.5 * log_variance) * noise
        reconstruction = self.reconstruction_nll(images, z, training=training)
        kl = losses.gaussian_kl(mean, log_variance)
        return {"loss": reconstruction + self.kl_weight * kl, "reconstruction": reconstruction, "kl": kl}

    def importance_weighted_nll(self, images, samples, seed, chunk=IW_CHUNK):
        """-log (1/k sum_k p(x|z_k) p(z_k) / q(z_k|x)), z_k ~ q(z|x): Burda et al.'s (2016) estimate of -log p(x).

        An upper bound in expectation, tighter than the negative ELBO, approaching -log p(x) as
        k = `samples` grows. `seed`: two integers; the same seed gives the same estimate, whatever
        the `chunk`: the number of samples decoded together, which bounds memory to chunk x batch images.
        """
        mean, log_variance = self.encoder(images, training=False)
        chunk = min(samples, chunk)

        def chunk_log_weights(start):
            """log p(x|z_k) p(z_k) / q(z_k|x) for k in [start, start + chunk): [chunk, batch]; -inf past k."""
            indices = start + tf.range(chunk)
            noise = tf.map_fn(lambda index: tf.random.stateless_normal(
                tf.shape(mean), seed=tf.random.experimental.stateless_fold_in(seed, index)), indices,
                fn_output_signature=tf.float32)
            z = mean + tf.exp(0.5 * log_variance) * noise  # [chunk, batch, latent]
            reconstruction = self.reconstruction_nll(tf.tile(images, [chunk, 1, 1, 1]),
                                                     tf.reshape(z, [-1, self.latent_dim]))
            log_weights = (losses.gaussian_nll(z, mean, log_variance) - losses.gaussian_nll(z, 0.0, 0.0)
                           - tf.reshape(reconstruction, [chunk, -1]))
            return tf.where(indices[:, None] < samples, log_weights, -math.inf)

        log_weights = tf.map_fn(chunk_log_weights, tf.range(0, samples, chunk), fn_output_signature=tf.float32)
        return math.log(samples) - tf.reduce_logsumexp(tf.reshape(log_weights, [-1, tf.shape(images)[0]]), axis=0)

    def train_step(self, batch):
        images = batch["images"]
        noise = optim.latents(self.seed_generator, tf.shape(images)[0], self.latent_dim)
        terms = {}

        def loss():
            terms.update(self.negative_elbo(images, noise, training=True))
            return tf.reduce_mean(terms["loss"])

        optim.minimize(self.optimizer, loss, self.trainable_variables)
        self.steps_trained.assign_add(1)
        return self.track(terms)

    def test_step(self, batch):
        """Noise from a fixed stateless seed: evaluating leaves the training noise generator where it was,
        and the same weights always get the same test ELBO."""
        images = batch["images"]
        noise = tf.random.stateless_normal(tf.stack([tf.shape(images)[0], self.latent_dim]), seed=[self.seed, 1])
        return self.track(self.negative_elbo(images, noise))

    def track(self, terms):
        """Adds per-example terms to the trackers, so means weigh every image alike, whatever its batch."""
        for tracker in self.metrics:
            tracker.update_state(terms[tracker.name])
        return {m.name: m.result() for m in self.metrics}

    def grid_inputs(self, num, seed, test_images):
        """Fixed test images to reconstruct and fixed prior latents to decode, each [rows, cols, ...]."""
        cols = math.isqrt(num)
        pairs = max(1, cols // 4)
        sample_rows = max(1, cols - 2 * pairs)
        originals = tf.reshape(test_images(pairs * cols), [pairs, cols, *self.image_shape])
        return originals, tf.random.stateless_normal([sample_rows, cols, self.latent_dim], seed=[seed, 0])

    def grid(self, inputs):
        """Rows of test images, each above its reconstruction, then rows of samples from the prior."""
        originals, z = inputs
        pairs, cols = originals.shape[:2]
        reconstructions = tf.reshape(self.reconstruct(tf.reshape(originals, [-1, *self.image_shape])),
                                     originals.shape)
        samples = tf.reshape(self.decode(tf.reshape(z, [-1, self.latent_dim])), [*z.shape[:2], *self.image_shape])
        pair_rows = tf.reshape(tf.stack([originals, reconstructions], axis=1), [2 * pairs, cols, *self.image_shape])
        return tf.concat([pair_rows, samples], axis=0)

    @property
    def image_shape(self):
        return [self.image_size, self.image_size, self.channels]

    def serving_endpoints(self):
        """name -> (function, input signature) of the SavedModel's signatures."""
        images_spec = tf.TensorSpec([None, *self.image_shape], tf.float32, name="images")
        z_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        count_spec = tf.TensorSpec([], tf.int32, name="num_images")
        seed_spec = tf.TensorSpec([], tf.int64, name="seed")

        def encode(images):
            mean, log_variance = self.encoder(images, training=False)
            return {"mean": mean, "log_variance": log_variance}

        def decode(z):
            return image_outputs(self.decode(z))

        def reconstruct(images):
            return image_outputs(self.reconstruct(images))

        def sample(num_images, seed):
            return decode(seeded_normal(num_images, self.latent_dim, seed))

        return {"serving_default": (decode, [z_spec]), "decode": (decode, [z_spec]),
                "encode": (encode, [images_spec]), "reconstruct": (reconstruct, [images_spec]),
                "sample": (sample, [count_spec, seed_spec])}
