"""DCGAN (Radford, Metz and Chintala, 2016).

G: a projected latent upsampled by stride-2 transposed convolutions with batch
norm and ReLU to a tanh image. D: stride-2 convolutions with LeakyReLU (batch
norm on all but the first) to one logit. No pooling, no fully connected hidden layers.

    python train.py --model=dcgan --dataset=shapes            # ~8 min on 2 CPU cores: objects on flat
                                                              # backgrounds, discs clearest (20 epochs)
    python train.py --model=dcgan --dataset=celeb_a --image_size=64
"""
import math

import keras
import tensorflow as tf

from zoo import losses, optim
from zoo.signatures import image_outputs, seeded_normal
from zoo.registry import MODELS


def _num_upsamples(image_size):
    return int(math.log2(image_size // 4))


def _conv_init():
    """The paper's initialisation, N(0, 0.02); Keras's Glorot default trains visibly slower."""
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm(synchronized):
    # Momentum 0.9 (Keras's default is 0.99): the moving statistics that sample grids and
    # exports use must keep up with a generator that changes fast. `synchronized`: statistics
    # over the global batch under tf.distribute, not each replica's slice of it.
    return keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized,
                                           gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02))


def generator_widths(image_size, base_filters):
    """Filters of G's 4x4 projection and of each hidden transposed convolution.

    The paper's: halving at each upsampling down to `base_filters` in the last hidden
    convolution (64 px, b = 128: 1024, 512, 256, 128; 32 px: 4b, 2b, b).
    """
    return [base_filters * 2 ** i for i in reversed(range(_num_upsamples(image_size)))]


def build_generator(image_size, channels, latent_dim, base_filters, condition_dim=0, sync_batch_norm=False):
    """latent (plus a `condition_dim` vector, for the conditional GAN) -> image in [-1, 1]."""
    widths = generator_widths(image_size, base_filters)
    z = keras.Input((latent_dim + condition_dim,), name="z")
    x = keras.layers.Dense(4 * 4 * widths[0], use_bias=False, kernel_initializer=_conv_init())(z)
    x = keras.layers.Reshape((4, 4, widths[0]))(x)
    x = keras.layers.ReLU()(_batch_norm(sync_batch_norm)(x))
    for width in widths[1:]:
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same",
                                         use_bias=False, kernel_initializer=_conv_init())(x)
        x = keras.layers.ReLU()(_batch_norm(sync_batch_norm)(x))
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                     kernel_initializer=_conv_init(), dtype="float32")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(z, images, name="generator")


def build_discriminator(image_size, channels, base_filters, condition_channels=0, sync_batch_norm=False):
    """image (plus `condition_channels` label maps, for the conditional GAN) -> one logit."""
    images = keras.Input((image_size, image_size, channels + condition_channels), name="images")
    x = images
    for i in range(_num_upsamples(image_size)):
        x = keras.layers.Conv2D(base_filters * 2 ** i, 4, strides=2, padding="same", use_bias=i == 0,
                                kernel_initializer=_conv_init())(x)
        if i > 0:
            x = _batch_norm(sync_batch_norm)(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    logits = keras.layers.Dense(1, kernel_initializer=_conv_init(), dtype="float32",
                                name="logits")(keras.layers.Flatten()(x))
    return keras.Model(images, logits, name="discriminator")


@MODELS.register("dcgan")
@keras.saving.register_keras_serializable(package="zoo")
class DCGAN(keras.Model):
    """Unconditional DCGAN trained with the non-saturating GAN loss."""

    needs_labels = False
    config_defaults = {}  # Config defaults are the DCGAN paper's
    optimizer_names = ("d_optimizer", "g_optimizer")
    evaluations = ()  # zoo.metrics plug-ins run on the test split at the end of training

    def __init__(self, image_size=32, channels=3, latent_dim=100, base_filters=64, seed=0, num_classes=0,
                 sync_batch_norm=False, **kwargs):
        """`num_classes` > 0 widens the networks' inputs for the conditional GAN's one-hot labels.

        `sync_batch_norm`: batch statistics over the global batch under tf.distribute.
        """
        super().__init__(**kwargs)
        self.image_size, self.channels = image_size, channels
        self.latent_dim, self.base_filters, self.seed = latent_dim, base_filters, seed
        self.num_classes, self.sync_batch_norm = num_classes, sync_batch_norm
        self.generator = build_generator(image_size, channels, latent_dim, base_filters, num_classes,
                                         sync_batch_norm)
        self.discriminator = build_discriminator(image_size, channels, base_filters, num_classes, sync_batch_norm)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.built = True  # `fit` must not trace `call` (which takes latents) on an image batch

    @classmethod
    def from_run(cls, config, source):
        return cls(image_size=config.image_size, channels=source.channels, latent_dim=config.latent_dim,
                   base_filters=config.base_filters, seed=config.seed, sync_batch_norm=config.sync_batch_norm)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim, "base_filters": self.base_filters, "seed": self.seed,
                "sync_batch_norm": self.sync_batch_norm}

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        # optimizer=None: Keras's own default would build an RMSprop over every variable,
        # a third optimiser that nothing uses but checkpoints would carry.
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        # Built here, inside the strategy scope: built lazily in train_step they fail
        # under MirroredStrategy.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    @property
    def step(self):
        return self.g_optimizer.iterations

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def generate(self, z, labels, training):
        """G(z); the conditional GAN's G also takes the labels (None here)."""
        return self.generator(z, training=training)

    def discriminate(self, images, labels, training):
        """D's logits for `images`; the conditional GAN's D also takes the labels (None here)."""
        return self.discriminator(images, training=training)

    def train_step(self, batch):
        real, labels = batch["images"], batch.get("labels")
        batch_size = tf.shape(real)[0]
        # D's step differentiates D only: G's forward pass stays outside its tape.
        fake = tf.stop_gradient(self.generate(optim.latents(self.seed_generator, batch_size, self.latent_dim),
                                              labels, training=True))

        def discriminator_loss():
            return tf.reduce_mean(losses.discriminator_loss(self.discriminate(real, labels, training=True),
                                                            self.discriminate(fake, labels, training=True)))

        def generator_loss():
            fake = self.generate(optim.latents(self.seed_generator, batch_size, self.latent_dim), labels,
                                 training=True)
            return tf.reduce_mean(losses.generator_loss(self.discriminate(fake, labels, training=True)))

        self.d_loss_tracker.update_state(optim.minimize(
            self.d_optimizer, discriminator_loss, self.discriminator.trainable_variables))
        self.g_loss_tracker.update_state(optim.minimize(
            self.g_optimizer, generator_loss, self.generator.trainable_variables))
        return {m.name: m.result() for m in self.metrics}

    def grid_inputs(self, num, seed, test_images=None):
        """The fixed latents of every epoch's sample grid.

        `test_images(n)`, the first n test images, serves models whose grid shows real ones (the VAE).
        """
        return tf.random.stateless_normal([num, self.latent_dim], seed=[seed, 0])

    def grid(self, z):
        """Images [rows, cols, H, W, C] in [-1, 1] for the sample grid."""
        images = self.generator(z, training=False)
        cols = int(math.sqrt(images.shape[0]))
        return tf.reshape(images[: cols * cols], [cols, cols, *images.shape[1:]])

    def serving_endpoints(self):
        """name -> (function, input signature) of the SavedModel's signatures."""
        z_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        count_spec = tf.TensorSpec([], tf.int32, name="num_images")
        seed_spec = tf.TensorSpec([], tf.int64, name="seed")

        def generate(z):
            return image_outputs(self.generator(z, training=False))

        def sample(num_images, seed):
            return generate(seeded_normal(num_images, self.latent_dim, seed))

        return {"serving_default": (generate, [z_spec]), "sample": (sample, [count_spec, seed_spec])}
