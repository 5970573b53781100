"""The models of the zoo; importing registers them in `zoo.MODELS`."""
from zoo.models.dcgan import DCGAN
