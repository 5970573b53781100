"""The input pipeline: endless shuffled passes a resumed run can pick up mid-way, and the cache of
decoded images (the rest of make_dataset is specified by the dataset tests)."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from zoo.datasets import pipelines
from zoo.errors import RunMismatchError, UsageError
from zoo.datasets.pipelines import shuffled_passes


EXAMPLES = 256


@pytest.fixture
def disk_cache(monkeypatch):
    monkeypatch.setattr(pipelines, "CACHE_LIMIT_BYTES", 0)  # everything is "too large for memory"


def _decoding_counted(counter):
    def decode(index):
        counter.append(1)
        return index

    return tf.data.Dataset.range(EXAMPLES).map(
        lambda index: {"images": tf.py_function(decode, [index], tf.int64)})


def _passes(directory, counter, passes):
    dataset = pipelines.cache_decoded(_decoding_counted(counter), EXAMPLES, str(directory), EXAMPLES, seed=0)
    return [[int(x["images"]) for x in dataset] for _ in range(passes)]


def test_a_large_split_is_decoded_once_then_read_from_disk_by_later_epochs(disk_cache, tmp_path):
    counter = []
    first, second = _passes(tmp_path / "cache", counter, passes=2)
    assert sorted(first) == sorted(second) == list(range(EXAMPLES))
    assert len(counter) == EXAMPLES


def test_a_later_run_reads_the_disk_cache_an_earlier_one_wrote(disk_cache, tmp_path):
    def run():
        dataset = tf.data.Dataset.range(EXAMPLES).map(lambda index: {"images": index * 2})
        return [int(x["images"]) for x in pipelines.cache_decoded(dataset, EXAMPLES, str(tmp_path), EXAMPLES, 0)]

    assert sorted(run()) == sorted(run()) == list(range(0, 2 * EXAMPLES, 2))
    snapshots = [root for root, _, files in os.walk(tmp_path) if "snapshot.metadata" in files]
    assert len(snapshots) == 1 and len(next(os.walk(snapshots[0]))[1]) == 1  # one snapshot, one writer run


def test_the_first_pass_over_a_disk_cache_is_the_one_every_later_pass_and_run_reads(disk_cache, tmp_path):
    # Once the cache was written during pass 0 (in file order) and read after: the same command in a
    # new work directory saw another first epoch than the run that wrote the cache.
    def run(passes):
        dataset = tf.data.Dataset.range(EXAMPLES).map(lambda index: {"images": index})
        cached = pipelines.cache_decoded(dataset, EXAMPLES, str(tmp_path), EXAMPLES, 0)
        return [[int(x["images"]) for x in cached] for _ in range(passes)]

    first_run, later_run = run(passes=2), run(passes=1)
    assert first_run[0] == first_run[1] == later_run[0] != list(range(EXAMPLES))


def test_a_disk_cached_split_is_read_from_all_over_its_file_order(disk_cache, tmp_path):
    _, second = _passes(tmp_path / "cache", [], passes=2)
    run_length = EXAMPLES // pipelines.SNAPSHOT_SHARDS
    # Any SNAPSHOT_READ_CYCLE consecutive examples come from as many runs of the file order,
    # which are not the first ones: a shuffle window downstream mixes the whole split.
    window = second[:pipelines.SNAPSHOT_READ_CYCLE]
    assert len({i // run_length for i in window}) == pipelines.SNAPSHOT_READ_CYCLE
    assert sorted(i // run_length for i in window) != list(range(pipelines.SNAPSHOT_READ_CYCLE))


def test_a_small_split_is_cached_in_memory(tmp_path):
    counter = []
    first, second = _passes(tmp_path / "cache", counter, passes=2)
    assert first == second == list(range(EXAMPLES)) and len(counter) == EXAMPLES
    assert not (tmp_path / "cache").exists()


def _stream(skip, count, num_examples=10, seed=0):
    dataset = tf.data.Dataset.range(num_examples).cache()
    return [int(x) for x in shuffled_passes(dataset, num_examples, seed, skip).take(count)]


def test_each_pass_is_a_shuffled_permutation_of_the_split():
    stream = _stream(0, 30)
    passes = [stream[i:i + 10] for i in range(0, 30, 10)]
    assert all(sorted(p) == list(range(10)) for p in passes)
    assert len({tuple(p) for p in passes}) == 3  # reshuffled every pass
    assert passes[0] != list(range(10))


def test_a_stream_started_k_examples_in_goes_on_as_the_uninterrupted_one():
    whole = _stream(0, 40)
    for skip in (0, 3, 10, 17, 29):
        assert _stream(skip, 40 - skip) == whole[skip:]


def test_the_seed_changes_the_order():
    assert not np.array_equal(_stream(0, 10, seed=0), _stream(0, 10, seed=1))


def _source_of(name, version):
    builder = types.SimpleNamespace(info=types.SimpleNamespace(name=name, version=version))
    return pipelines.DataSource(name=name, channels=3, num_classes=6, prepare=lambda: builder,
                                class_names=("circle", "square", "triangle", "star", "hexagon", "cross"))


def _saved(tmp_path):
    with open(tmp_path / pipelines.DATASET_FACTS) as f:
        return json.load(f)


def test_a_run_records_the_data_version_it_trains_on_and_resumes_on_it(tmp_path):
    pipelines.write_dataset_facts(_source_of("shapes", "3.0.0"), str(tmp_path))
    assert _saved(tmp_path)["data_version"] == "shapes 3.0.0"
    pipelines.check_same_data(_source_of("shapes", "3.0.0"), str(tmp_path))


def test_a_run_refuses_to_resume_on_another_version_of_its_data(tmp_path):
    # shapes 3.0.0 replaced 2.0.0: a run of 2.0.0 resumed on it would mix two datasets, and two feature
    # networks' FIDs in one quality curve.
    pipelines.write_dataset_facts(_source_of("shapes", "2.0.0"), str(tmp_path))
    with pytest.raises(RunMismatchError, match=r"trained on shapes 2.0.0, and shapes is now shapes 3.0.0: use another"):
        pipelines.check_same_data(_source_of("shapes", "3.0.0"), str(tmp_path))


def test_a_run_from_before_versions_were_recorded_keeps_its_version_unknown(tmp_path):
    # Its version is not known: it is not stamped with the present one, which would pass for a record.
    old = {"name": "shapes", "channels": 3, "num_classes": 6, "class_names": []}
    (tmp_path / pipelines.DATASET_FACTS).write_text(json.dumps(old))
    pipelines.check_same_data(_source_of("shapes", "3.0.0"), str(tmp_path))
    pipelines.write_dataset_facts(_source_of("shapes", "3.0.0"), str(tmp_path))
    assert "data_version" not in _saved(tmp_path)


def test_a_damaged_record_is_one_line_naming_the_file(tmp_path):
    (tmp_path / pipelines.DATASET_FACTS).write_text("[1, 2")
    with pytest.raises(UsageError, match=r"dataset.json is damaged \(JSONDecodeError: .*\); delete it"):
        pipelines.check_same_data(_source_of("shapes", "3.0.0"), str(tmp_path))
