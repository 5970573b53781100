"""A domain feature network for shapes, trained briefly once per session into a temporary cache."""
import pytest

import zoo
from zoo import features
from zoo.datasets import get_source

SHORT_TRAINING = 200  # steps of the domain network: seconds, and well above chance on shapes


def train_shapes_features(cache_dir):
    """The shapes domain network, trained SHORT_TRAINING steps into `cache_dir` (or loaded from it)."""
    config = zoo.Config(dataset="shapes", cache_dir=str(cache_dir), batch_size=128)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "DOMAIN_TRAIN_STEPS", SHORT_TRAINING)
        return features.get(config, get_source(config))


@pytest.fixture(scope="session")
def shapes_features():
    """train_shapes_features itself."""
    return train_shapes_features


@pytest.fixture(scope="session")
def shapes_feature_cache(tmp_path_factory):
    """A cache dir holding the shapes domain network at 32px, seed 0; pass it as cache_dir."""
    cache_dir = tmp_path_factory.mktemp("feature_cache")
    train_shapes_features(cache_dir)
    return str(cache_dir)
