"""Conditional GAN (Mirza and Osindero, 2014) on the DCGAN backbone.

G takes z joined to the one-hot class label; D takes the image joined to the label
as constant one-hot maps, one channel per class. Why not a learned embedding and a
projection discriminator (Miyato and Koyama, 2018): the zoo's datasets have few
classes (6 to 10; 2^k for k CelebA attributes), where a one-hot into G's first dense
layer is a learned embedding already and the label maps cost D a few input
channels; and both leave the DCGAN's networks, losses and train_step as they are.
The projection wins with hundreds of classes, whose maps would swamp D's input.

    python train.py --model=cgan --dataset=fashion_mnist --epochs=3 --steps_per_epoch=300
        # 4 min on 2 CPU cores: every row of the grid is its class
    python train.py --model=cgan --dataset=shapes  # 9 min: coloured blobs, identical rows (at 40 epochs too)
    python train.py --model=cgan --dataset=celeb_a --condition_on=Smiling,Male --image_size=64
"""
import keras
import tensorflow as tf

from zoo.errors import UsageError
from zoo.signatures import image_outputs, seeded_normal
from zoo.models.dcgan import DCGAN
from zoo.registry import MODELS


@MODELS.register("cgan")
@keras.saving.register_keras_serializable(package="zoo")
class ConditionalGAN(DCGAN):
    """A DCGAN whose generator and discriminator also see the class label."""

    needs_labels = True

    @classmethod
    def from_run(cls, config, source):
        return cls(image_size=config.image_size, channels=source.channels, latent_dim=config.latent_dim,
                   base_filters=config.base_filters, seed=config.seed, num_classes=source.num_classes,
                   sync_batch_norm=config.sync_batch_norm)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

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

    def generate(self, z, labels, training):
        return self.generator(tf.concat([z, tf.one_hot(labels, self.num_classes)], axis=-1), training=training)

    def discriminate(self, images, labels, training):
        label_maps = tf.one_hot(labels, self.num_classes)[:, None, None, :] * tf.ones_like(images[..., :1])
        return self.discriminator(tf.concat([images, label_maps], axis=-1), training=training)

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
