"""Conditional GAN (Mirza and Osindero, 2014) with the conditioning the field found works.

G: the DCGAN generator whose batch norms are class-conditional, their scale and shift linear
in a shared learned class embedding (de Vries et al. 2017; BigGAN's parametrisation). D: the
DCGAN discriminator's features phi(x), summed over positions, read by a projection (Miyato and
Koyama, 2018): logit = w . phi(x) + embed(y) . phi(x), and (--class_loss, on by default) by an
auxiliary classifier trained on real images (AC-GAN, Odena et al. 2017) whose cross-entropy
G also minimises on its own images. Why, as measured on shapes (docs/results.md): the
projection alone learned little of the label (class accuracy 0.17-0.19 after 468 steps with a
free (gamma, beta) per class, whose spread between classes had not moved from its initial
0.02: Adam moves a weight about the learning rate a step; 0.16-0.26 up to step 2340 with the
shared embedding, G then answering the label with colours, as D's features sorted colours,
not shapes). The classifier, which only real images train, points G at the shapes. Its weight
lambda is 0.3: at 1 G drew one image per class on shapes 3.0.0 (recall 0.006; AC-GAN's known
pull towards the most classifiable image), at 0.3 each class in many colours and sizes (recall
0.34, FID 5.3 against 10.4 at 1, in a third of the steps). The losses stay the textbook ones,
plus lambda CE when --class_loss = lambda > 0.

    python train.py --model=cgan   # shapes, 2320 steps of 64; about 3 min of training on a quiet 2-core CPU
        # (80 ms a step). Expect (seed 0, shapes 3.0.0): each grid row its class in varied colours and sizes, some
        # edges ragged; class accuracy 0.32, 0.69, 0.89, 0.99 at steps 512-2000; at the end FID 5.3, recall
        # 0.34, class accuracy 0.995 (10000 samples; docs/results.md).
    python train.py --model=cgan --dataset=fashion_mnist --epochs=3 --steps_per_epoch=300
    python train.py --model=cgan --dataset=celeb_a --condition_on=Smiling,Male --image_size=64
"""
import keras
import tensorflow as tf

from zoo.errors import UsageError
from zoo.signatures import image_outputs, seeded_normal
from zoo.models.dcgan import DCGAN, discriminator_features, upsampling_generator
from zoo.registry import MODELS


CLASS_EMBEDDING = 128  # size of G's shared class embedding (BigGAN's)


@keras.saving.register_keras_serializable(package="zoo")
class ConditionalBatchNorm(keras.layers.Layer):
    """Batch norm whose scale and shift are linear in the class embedding e_y: (1 + e_y W_g) norm(x) + e_y W_b.

    BigGAN's parametrisation, rather than a free (gamma, beta) per class: Adam moves each weight by
    about the learning rate a step, so a per-class gamma near 1 could drift by only about 0.1 in 500
    steps at 2e-4, and the classes stayed alike for the default run's length on shapes; through a
    shared N(0, 1) embedding of 128 numbers every step moves all 128 products at once.
    """

    def __init__(self, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.synchronized = synchronized
        # Momentum 0.9 as in the DCGAN: moving statistics that keep up with a fast-changing G.
        self.norm = keras.layers.BatchNormalization(momentum=0.9, center=False, scale=False,
                                                    synchronized=synchronized)

    def build(self, input_shape):
        embedding_size, channels = input_shape[1][-1], input_shape[0][-1]
        initializer = keras.initializers.RandomNormal(0.0, 0.02)
        self.gamma_kernel = self.add_weight(shape=(embedding_size, channels), name="gamma_kernel",
                                            initializer=initializer)
        self.beta_kernel = self.add_weight(shape=(embedding_size, channels), name="beta_kernel",
                                           initializer=initializer)
        self.norm.build(input_shape[0])

    def call(self, inputs, training=None):
        x, embedding = inputs
        embedding = tf.cast(embedding, x.dtype)
        gamma = 1.0 + tf.matmul(embedding, tf.cast(self.gamma_kernel, x.dtype))[:, None, None, :]
        beta = tf.matmul(embedding, tf.cast(self.beta_kernel, x.dtype))[:, None, None, :]
        return self.norm(x, training=training) * gamma + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "synchronized": self.synchronized}


@keras.saving.register_keras_serializable(package="zoo")
class Projection(keras.layers.Layer):
    """embed(y) . phi(x): how well the features match the label (Miyato and Koyama, 2018)."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        self.embedding = self.add_weight(shape=(self.num_classes, input_shape[0][-1]),
                                         initializer=keras.initializers.RandomNormal(0.0, 0.02), name="embedding")

    def call(self, inputs):
        features, labels = inputs
        return tf.reduce_sum(tf.gather(self.embedding, labels) * features, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="zoo")
class SumPool(keras.layers.Layer):
    """[B, H, W, C] -> [B, C], the sum over positions (SNGAN's global sum pooling)."""

    def call(self, x):
        return tf.reduce_sum(x, axis=[1, 2])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def build_generator(image_size, channels, latent_dim, base_filters, num_classes, sync_batch_norm=False,
                    name="generator"):
    """(latent, label) -> image in [-1, 1]: the DCGAN generator with class-conditional batch norm."""
    z = keras.Input((latent_dim,), name="z")
    labels = keras.Input((), dtype="int32", name="labels")
    embedding = keras.layers.Embedding(num_classes, CLASS_EMBEDDING, name="class_embedding",
                                       embeddings_initializer=keras.initializers.RandomNormal(0.0, 1.0))(labels)
    images = upsampling_generator(z, image_size, channels, base_filters,
                                  lambda x: ConditionalBatchNorm(sync_batch_norm)([x, embedding]))
    return keras.Model([z, labels], images, name=name)


def build_discriminator(image_size, channels, base_filters, num_classes, sync_batch_norm=False, d_norm="batch",
                        class_head=False):
    """(image, label) -> one logit, w . phi(x) + embed(y) . phi(x); with `class_head`, also the class logits
    V phi(x) of an auxiliary classifier."""
    images = keras.Input((image_size, image_size, channels), name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    # Summed over positions, as in Miyato and Koyama's phi: a shape's class does not depend on where it
    # stands, and one embedding per class then matches it anywhere (flattened, the projection would need
    # a template per position).
    features = SumPool()(discriminator_features(images, image_size, base_filters, sync_batch_norm, d_norm))
    unconditional = keras.layers.Dense(1, dtype="float32", name="logits",
                                       kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02))(features)
    projection = Projection(num_classes, dtype="float32", name="projection")([features, labels])
    logits = keras.layers.Add(dtype="float32", name="judgement")([unconditional, projection])
    if not class_head:
        return keras.Model([images, labels], logits, name="discriminator")
    class_logits = keras.layers.Dense(num_classes, dtype="float32", name="class_logits",
                                      kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02))(features)
    return keras.Model([images, labels], [logits, class_logits], name="discriminator")


@MODELS.register("cgan")
@keras.saving.register_keras_serializable(package="zoo")
class ConditionalGAN(DCGAN):
    """A GAN whose generator draws the asked class and whose discriminator judges image and label together.

    Training (losses, EMA, DiffAugment, R1) is the DCGAN's; the batch's labels go to both networks.
    `class_loss` = lambda > 0 adds an auxiliary classifier (AC-GAN, Odena et al. 2017) on D's
    features, trained on real images only (so it learns the classes as the data draws them, not
    as G does): D's loss gains lambda CE(C(x), y), G's lambda CE(C(G(z, y)), y).
    """

    needs_labels = True

    def __init__(self, num_classes=2, class_loss=0.0, **kwargs):
        self.num_classes = num_classes  # read by the network builders that the DCGAN's __init__ calls
        self.class_loss = class_loss
        super().__init__(**kwargs)
        self.class_tracker = keras.metrics.Mean(name="class_loss")

    def build_generator(self, name):
        return build_generator(self.image_size, self.channels, self.latent_dim, self.base_filters,
                               self.num_classes, self.sync_batch_norm, name)

    def build_discriminator(self):
        return build_discriminator(self.image_size, self.channels, self.base_filters, self.num_classes,
                                   self.sync_batch_norm, self.d_norm, class_head=self.class_loss > 0)

    @classmethod
    def from_run(cls, config, source):
        return cls(image_size=config.image_size, channels=source.channels, latent_dim=config.latent_dim,
                   num_classes=source.num_classes, class_loss=config.class_loss, **cls.training_options(config))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "class_loss": self.class_loss}

    @property
    def metrics(self):
        return super().metrics + ([self.class_tracker] if self.class_loss else [])

    def discriminate(self, images, batch, training):
        outputs = self.discriminator([images, batch["labels"]], training=training)
        return tuple(outputs) if self.class_loss else (outputs, None)

    def class_term(self, class_logits, batch):
        """lambda times the mean cross-entropy of D's class logits against the batch's labels; 0 when off."""
        if not self.class_loss:
            return 0.0
        cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch["labels"], class_logits))
        self.class_tracker.update_state(cross_entropy)  # D's on real images, then G's on its own
        return self.class_loss * cross_entropy

    def with_condition(self, x, batch):
        return [x, batch["labels"]]

    def call(self, inputs, training=False):
        """(z, labels) -> images; a label outside [0, num_classes) is a UsageError."""
        return self.generate(*self.checked(*inputs), training=training)

    def checked(self, z, labels):
        """(z, int32 labels), or an error that names the allowed labels.

        Called eagerly it raises UsageError; traced (the SavedModel's signatures) it adds
        asserts whose InvalidArgumentError carries the same message.
        """
        labels = tf.cast(labels, tf.int32)
        in_range = f"labels must be in [0, {self.num_classes}): this model has {self.num_classes} classes"
        rows = "z and labels must have the same number of rows"
        try:
            checks = [tf.debugging.assert_non_negative(labels, message=in_range),
                      tf.debugging.assert_less(labels, self.num_classes, message=in_range),
                      tf.debugging.assert_equal(tf.shape(z)[0], tf.shape(labels)[0], message=rows)]
        except tf.errors.InvalidArgumentError:  # eager: raised by the first failed check
            outside = [label for label in labels.numpy().tolist() if not 0 <= label < self.num_classes]
            raise UsageError(f"{in_range}; got {outside}" if outside else rows) from None
        with tf.control_dependencies(checks):
            return tf.identity(z), tf.identity(labels)

    def generate(self, z, labels, training=False):
        """Images of class `labels` from the generator users see."""
        return self.sampler([z, labels], training=training)

    def grid_inputs(self, num, seed, test_images=None):
        """One row per class, the same fixed latents in every row."""
        cols = max(1, num // self.num_classes)
        z = tf.random.stateless_normal([cols, self.latent_dim], seed=[seed, 0])
        return tf.tile(z, [self.num_classes, 1]), tf.repeat(tf.range(self.num_classes), cols)

    def grid(self, inputs):
        """Images [classes, cols, H, W, C] in [-1, 1]: row r is class r."""
        z, labels = inputs
        images = self.generate(z, labels, training=False)
        return tf.reshape(images, [self.num_classes, -1, *images.shape[1:]])

    def serving_endpoints(self):
        """name -> (function, input signature) of the SavedModel's signatures."""
        z_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        labels_spec = tf.TensorSpec([None], tf.int32, name="labels")
        seed_spec = tf.TensorSpec([], tf.int64, name="seed")

        def generate(z, labels):
            return image_outputs(self.generate(*self.checked(z, labels), training=False))

        def sample(labels, seed):
            return generate(seeded_normal(tf.shape(labels)[0], self.latent_dim, seed), labels)

        return {"serving_default": (generate, [z_spec, labels_spec]), "sample": (sample, [labels_spec, seed_spec])}
