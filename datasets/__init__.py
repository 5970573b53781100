"""Input pipelines and the project's own tfds builders; importing registers them."""
from zoo.datasets import celeb_a_manual, idx, image_folder, pipelines, shapes
from zoo.datasets.pipelines import DataSource, get_source, make_dataset, write_dataset_facts
