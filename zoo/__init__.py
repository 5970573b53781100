"""A generative model zoo for TensorFlow and Keras.

    import zoo
    config = zoo.Config(model="dcgan", dataset="shapes", epochs=1)
    model = zoo.train(config)

`zoo.MODELS` and `zoo.DATASETS` are the registries the command line uses.
"""
from zoo.config import Config
from zoo.registry import DATASETS, MODELS
from zoo import datasets, models  # noqa: F401  registers the datasets and models
from zoo.training import train
