"""The training stream: endless shuffled passes whose order a resumed run can pick up mid-way."""
import numpy as np
import tensorflow as tf

from zoo.datasets.pipelines import shuffled_passes


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
