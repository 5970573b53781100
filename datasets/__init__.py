"""Input pipelines and the project's own tfds builders; importing registers them."""
from zoo.datasets import pipelines, shapes
from zoo.datasets.pipelines import DataSource, get_source, make_dataset
