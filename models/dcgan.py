"""DCGAN (Radford, Metz and Chintala, 2016).

G: a projected latent upsampled by stride-2 transposed convolutions with batch
norm and ReLU to a tanh image. D: stride-2 convolutions with LeakyReLU to one logit,
normalised (--d_norm) on all but the first: by layer norm by default, the paper's batch norm
by flag (on shapes, batch norm over separate real and generated batches let G collapse to
one image; docs/results.md). No pooling, no fully connected hidden layers.
Widths are the paper's: b = --base_filters in D's first and G's last hidden
convolution, doubling per layer inwards (64 px, b = 128: G 1024-512-256-128).

    python train.py                  # DCGAN on shapes: 5 epochs, 2320 steps of 64; 3 min 29 s on a quiet
        # 2-core CPU (README, measured 2026-11-24), the dataset prepared
    python train.py --model=dcgan --dataset=celeb_a --image_size=64 --base_filters=128
    python train.py --ema_kimg=0 --diffaugment= --noxla --d_norm=batch --learning_rate=2e-4   # the paper's plain recipe

Expected from the default run (seed 0, shapes 3.0.0, docs/results.md): all six shapes in the
data's colours on dark backgrounds, some edges ragged; FID 13.7, 11.1, 9.7, 9.3 at steps 512, 1008,
1504, 2000 on a fresh clone (2000 samples; the real data's floor 0.08). The run is deterministic, XLA
included: a later run of the same training code gave 13.71 and 11.10 again (docs/results.md). 10 minutes
(--epochs=17): crisp shapes, FID 5.5 (10000 samples).
"""
import math

import keras
import tensorflow as tf

from zoo import augment, ema, losses, optim
from zoo.config import D_NORMS
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


def upsampling_generator(z, image_size, channels, base_filters, normalize):
    """The DCGAN generator's layers on the latent tensor `z`; `normalize(x)` is its batch norm."""
    widths = generator_widths(image_size, base_filters)
    x = keras.layers.Dense(4 * 4 * widths[0], use_bias=False, kernel_initializer=_conv_init())(z)
    x = keras.layers.Reshape((4, 4, widths[0]))(x)
    x = keras.layers.ReLU()(normalize(x))
    for width in widths[1:]:
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same",
                                         use_bias=False, kernel_initializer=_conv_init())(x)
        x = keras.layers.ReLU()(normalize(x))
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                     kernel_initializer=_conv_init(), dtype="float32")(x)
    return keras.layers.Activation("tanh", dtype="float32", name="images")(x)


def build_generator(image_size, channels, latent_dim, base_filters, sync_batch_norm=False, name="generator"):
    """latent -> image in [-1, 1]."""
    z = keras.Input((latent_dim,), name="z")
    images = upsampling_generator(z, image_size, channels, base_filters, lambda x: _batch_norm(sync_batch_norm)(x))
    return keras.Model(z, images, name=name)


def _discriminator_norm(d_norm, sync_batch_norm):
    """D's normalisation after each hidden convolution but the first, or None.

    batch: the paper's, statistics of each batch D sees (real and fake apart); layer: each
    image's own statistics, so no logit depends on the other images of its batch; none.
    """
    if d_norm not in D_NORMS:
        raise ValueError(f"d_norm must be one of {', '.join(D_NORMS)}, got {d_norm!r}")
    if d_norm == "batch":
        return _batch_norm(sync_batch_norm)
    return keras.layers.LayerNormalization(axis=(1, 2, 3)) if d_norm == "layer" else None


def discriminator_features(images, image_size, base_filters, sync_batch_norm, d_norm="batch"):
    """D's stride-2 convolutions on the image tensor: its last 4x4 feature map."""
    x = images
    for i in range(_num_upsamples(image_size)):
        normalize = _discriminator_norm(d_norm, sync_batch_norm) if i > 0 else None
        x = keras.layers.Conv2D(base_filters * 2 ** i, 4, strides=2, padding="same", use_bias=normalize is None,
                                kernel_initializer=_conv_init())(x)
        if normalize is not None:
            x = normalize(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    return x


def build_discriminator(image_size, channels, base_filters, sync_batch_norm=False, d_norm="batch"):
    """image -> one logit."""
    images = keras.Input((image_size, image_size, channels), name="images")
    features = keras.layers.Flatten()(discriminator_features(images, image_size, base_filters, sync_batch_norm,
                                                              d_norm))
    logits = keras.layers.Dense(1, kernel_initializer=_conv_init(), dtype="float32", name="logits")(features)
    return keras.Model(images, logits, name="discriminator")


@MODELS.register("dcgan")
@keras.saving.register_keras_serializable(package="zoo")
class DCGAN(keras.Model):
    """Unconditional DCGAN trained with the non-saturating GAN loss.

    Optional, each by a flag: an exponential moving average of G's weights for every image
    shown (zoo.ema), DiffAugment of D's inputs (zoo.augment), and the R1 penalty
    (gamma / 2) E_x ||grad_x D(x)||^2 on real images added to D's loss (Mescheder et al. 2018),
    with D's batch norm on its moving statistics so that the gradient is each image's own;
    optionally on the first 1/`r1_batch_shrink` of the real batch only (r1_term).
    """

    needs_labels = False
    # 5 passes over shapes' 30000 images, 2320 steps (epochs cut to whole executions of 16). Adam at 5e-4 (the paper's 2e-4 stays a flag away):
    # the cGAN's class accuracy after 936 steps on shapes was 0.81 with it, 0.75 with 2e-4 (docs/results.md).
    config_defaults = {"epochs": 5, "learning_rate": 5e-4}
    optimizer_names = ("d_optimizer", "g_optimizer")
    evaluations = ()  # zoo.metrics plug-ins run on the test split at the end of training

    def __init__(self, image_size=32, channels=3, latent_dim=100, base_filters=64, seed=0, sync_batch_norm=False,
                 ema_kimg=0.0, ema_rampup=0.05, diffaugment="", r1_gamma=0.0, r1_batch_shrink=1, d_norm="batch",
                 **kwargs):
        """`sync_batch_norm`: batch statistics over the global batch under tf.distribute.

        `ema_kimg` > 0 keeps an average of G's weights with that half-life in thousands of
        images, ramped up as `ema_rampup` says (zoo.ema); samples, grids and exports use it.
        `diffaugment`: comma-separated zoo.augment transforms applied to all of D's inputs.
        `r1_gamma` > 0 adds the R1 penalty to D's loss, taken on 1/`r1_batch_shrink` of the real
        batch. `d_norm`: D's normalisation, one of D_NORMS.
        """
        super().__init__(**kwargs)
        self.image_size, self.channels = image_size, channels
        self.latent_dim, self.base_filters, self.seed = latent_dim, base_filters, seed
        self.sync_batch_norm, self.ema_kimg, self.ema_rampup = sync_batch_norm, ema_kimg, ema_rampup
        self.diffaugment, self.r1_gamma, self.d_norm = diffaugment, r1_gamma, d_norm
        self.r1_batch_shrink = r1_batch_shrink
        self.augment_policy = augment.parse_policy(diffaugment)
        self.generator = self.build_generator("generator")
        self.discriminator = self.build_discriminator()
        self.ema_generator = None
        if ema_kimg:
            self.ema_generator = self.build_generator("ema_generator")
            self.ema_generator.trainable = False
            ema.copy(self.ema_generator, self.generator)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Real images shown to D so far, checkpointed with the model: the EMA's ramp-up reads it.
        # Not steps x batch size: --batch_size may change when a run resumes.
        self.images_seen = keras.Variable(0, dtype="int64", trainable=False, name="images_seen",
                                          aggregation="only_first_replica")
        self.steps_trained = optim.step_counter()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.r1_tracker = keras.metrics.Mean(name="r1_penalty")
        self.built = True  # `fit` must not trace `call` (which takes latents) on an image batch

    def build_generator(self, name):
        return build_generator(self.image_size, self.channels, self.latent_dim, self.base_filters,
                               self.sync_batch_norm, name)

    def build_discriminator(self):
        return build_discriminator(self.image_size, self.channels, self.base_filters, self.sync_batch_norm,
                                   self.d_norm)

    @classmethod
    def from_run(cls, config, source):
        return cls(image_size=config.image_size, channels=source.channels, latent_dim=config.latent_dim,
                   **cls.training_options(config))

    @staticmethod
    def training_options(config):
        return dict(base_filters=config.base_filters, seed=config.seed, sync_batch_norm=config.sync_batch_norm,
                    ema_kimg=config.ema_kimg, ema_rampup=config.ema_rampup, diffaugment=config.diffaugment,
                    r1_gamma=config.r1_gamma, r1_batch_shrink=config.r1_batch_shrink, d_norm=config.d_norm)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim, "base_filters": self.base_filters, "seed": self.seed,
                "sync_batch_norm": self.sync_batch_norm, "ema_kimg": self.ema_kimg,
                "ema_rampup": self.ema_rampup, "diffaugment": self.diffaugment, "r1_gamma": self.r1_gamma,
                "r1_batch_shrink": self.r1_batch_shrink, "d_norm": self.d_norm}

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
        return [self.d_loss_tracker, self.g_loss_tracker] + ([self.r1_tracker] if self.r1_gamma else [])

    @property
    def step(self):
        return self.steps_trained

    @property
    def sampler(self):
        """The generator users see: the weights' moving average when there is one."""
        return self.generator if self.ema_generator is None else self.ema_generator

    def call(self, z, training=False):
        return self.sampler(z, training=training)

    def with_condition(self, x, batch):
        """G's input for this batch: x alone; the conditional GAN adds the batch's labels."""
        return x

    def discriminate(self, images, batch, training):
        """(D's logits [B, 1], its class logits [B, K] or None) for `images`; the DCGAN's D has no class head."""
        return self.discriminator(images, training=training), None

    def class_term(self, class_logits, batch):
        """What the loss adds for the class logits D gives (the cGAN's auxiliary classifier): nothing here."""
        return 0.0

    def augment(self, images):
        if not self.augment_policy:
            return images
        return augment.diff_augment(images, self.augment_policy, self.seed_generator.next())

    def discriminator_loss(self, real, fake, batch):
        """Mean of -log D(x) - log(1 - D(G(z))) over the batch, plus class_term's and the R1 penalty when on."""
        real, fake = self.augment(real), self.augment(fake)
        # R1 first: the training-mode passes below move the moving statistics it reads.
        penalty = self.r1_term(real, batch) if self.r1_gamma else 0.0
        real_logits, real_classes = self.discriminate(real, batch, training=True)
        fake_logits, _ = self.discriminate(fake, batch, training=True)
        loss = tf.reduce_mean(losses.discriminator_loss(real_logits, fake_logits))
        return loss + self.class_term(real_classes, batch) + penalty

    def r1_term(self, real, batch):
        """The batch's mean R1 penalty, estimated on the first 1/r1_batch_shrink (at least one) of its
        real images.

        An unbiased estimate for a share of the cost, as StyleGAN2-ADA's pl_batch_shrink does for its
        path-length penalty. Not StyleGAN2's lazy R1 (every k-th step, weighted by k): under XLA on
        this CPU, D's passes inside a tf.cond ran 14x slower than the same passes outside one.
        """
        count = tf.maximum(1, tf.shape(real)[0] // self.r1_batch_shrink)
        shrunk_batch = {key: value[:count] for key, value in batch.items()}
        penalty = tf.reduce_mean(self.r1_penalties(real[:count], shrunk_batch))
        self.r1_tracker.update_state(penalty)
        return penalty

    def r1_penalties(self, real, batch):
        """(gamma / 2) ||grad_x D(x)||^2 of each real image x, with D's batch norm in inference mode.

        In training mode batch norm normalises by the batch's own statistics, so every logit
        depends on every image and the gradient of their sum is not per image. With the moving
        statistics D(x) is a function of x alone, and the gradient of the summed logits holds each
        image's own grad_x D(x); it costs one more forward and backward pass of D on the images given.
        """
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(real)
            summed = tf.reduce_sum(self.discriminate(real, batch, training=False)[0])
        return losses.r1_penalty(tape.gradient(summed, real), self.r1_gamma)

    def generator_loss(self, batch, batch_size):
        """Mean of the non-saturating -log D(G(z)) over the batch, plus class_term's."""
        fake = self.generator(self.with_condition(self.latents(batch_size), batch), training=True)
        logits, classes = self.discriminate(self.augment(fake), batch, training=True)
        return tf.reduce_mean(losses.generator_loss(logits)) + self.class_term(classes, batch)

    def latents(self, batch_size):
        return optim.latents(self.seed_generator, batch_size, self.latent_dim)

    def train_step(self, batch):
        real = batch["images"]
        batch_size = tf.shape(real)[0]
        # D's step differentiates D only: G's forward pass stays outside its tape.
        fake = tf.stop_gradient(self.generator(self.with_condition(self.latents(batch_size), batch), training=True))
        self.d_loss_tracker.update_state(optim.minimize(
            self.d_optimizer, lambda: self.discriminator_loss(real, fake, batch),
            self.discriminator.trainable_variables))
        self.g_loss_tracker.update_state(optim.minimize(
            self.g_optimizer, lambda: self.generator_loss(batch, batch_size), self.generator.trainable_variables))
        global_batch = tf.cast(batch_size * tf.distribute.get_strategy().num_replicas_in_sync, "int64")
        self.images_seen.assign_add(global_batch)
        self.steps_trained.assign_add(1)
        if self.ema_generator is not None:
            beta = ema.decay(self.images_seen.value, global_batch, self.ema_kimg * 1000, self.ema_rampup)
            ema.update(self.ema_generator, self.generator, beta)
        return {m.name: m.result() for m in self.metrics}

    def grid_inputs(self, num, seed, test_images=None):
        """The fixed latents of every epoch's sample grid.

        `test_images(n)`, the first n test images, serves models whose grid shows real ones (the VAE).
        """
        return tf.random.stateless_normal([num, self.latent_dim], seed=[seed, 0])

    def grid(self, z):
        """Images [rows, cols, H, W, C] in [-1, 1] for the sample grid, from the generator users see."""
        images = self.sampler(z, training=False)
        cols = int(math.sqrt(images.shape[0]))
        return tf.reshape(images[: cols * cols], [cols, cols, *images.shape[1:]])

    def serving_endpoints(self):
        """name -> (function, input signature) of the SavedModel's signatures, from the generator users see."""
        z_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        count_spec = tf.TensorSpec([], tf.int32, name="num_images")
        seed_spec = tf.TensorSpec([], tf.int64, name="seed")

        def generate(z):
            return image_outputs(self.sampler(z, training=False))

        def sample(num_images, seed):
            return generate(seeded_normal(num_images, self.latent_dim, seed))

        return {"serving_default": (generate, [z_spec]), "sample": (sample, [count_spec, seed_spec])}
