from itertools import count

from cachectl.batches import batched


def test_batches_are_of_the_size_asked_and_the_last_one_holds_the_rest():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_batches_are_read_lazily_so_an_endless_stream_gives_its_first_batch():
    assert next(batched(count(), 2)) == [0, 1]
