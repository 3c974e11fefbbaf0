"""store.count_existing: the multi-key EXISTS that tag listings count live members with."""

from __future__ import annotations

from cachectl.config import Settings
from cachectl.store import Store


def _fill(store: Store, n: int) -> list[bytes]:
    keys = [f"api_cache:ep:id:{i}".encode() for i in range(n)]
    store.send_many([("SET", k, "v") for k in keys])
    return keys


def test_counts_existing_keys_across_batches(redis_url):
    with Store(Settings(url=redis_url, batch_size=7)) as store:
        keys = _fill(store, 20)
        missing = [f"api_cache:ep:id:{-i}".encode() for i in range(1, 6)]
        assert store.count_existing(keys + missing) == 20
        assert store.count_existing(missing) == 0
        assert store.count_existing([]) == 0


def test_counts_keys_of_every_slot_in_a_cluster(cluster_url):
    with Store(Settings(url=cluster_url, batch_size=50)) as store:
        keys = _fill(store, 120)  # spread over the three primaries' slots
        assert store.count_existing(keys + [b"api_cache:nope:no_params"]) == 120
