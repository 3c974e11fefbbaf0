"""Fixed-size batches of a stream, the one way every bulk job cuts its work."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), read lazily: one batch in memory."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
