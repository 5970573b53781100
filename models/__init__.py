"""The models of the zoo; importing registers them in `zoo.MODELS`."""
from zoo.models.cgan import ConditionalGAN
from zoo.models.dcgan import DCGAN
from zoo.models.vae import VAE
