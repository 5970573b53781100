import pytest

import zoo
from zoo.errors import UsageError
from zoo.registry import Registry


def test_registered_names_resolve_to_their_objects():
    registry = Registry("widget")
    registry.register("a")(int)
    assert registry.get("a") is int and "a" in registry and registry.names() == ["a"]


def test_registering_a_taken_name_is_an_error():
    registry = Registry("widget")
    registry.register("a")(int)
    with pytest.raises(KeyError, match="widget 'a' is already registered"):
        registry.register("a")(float)


def test_unknown_name_lists_the_known_ones():
    registry = Registry("widget")
    registry.register("b")(int)
    registry.register("a")(float)
    with pytest.raises(UsageError, match=r"^unknown widget 'c'; known: a, b$"):
        registry.get("c")


def test_the_zoo_registers_its_models_and_datasets():
    assert "dcgan" in zoo.MODELS
    for name in ("shapes", "mnist", "fashion_mnist", "cifar10", "celeb_a"):
        assert name in zoo.DATASETS
