"""Run-wide dedup split over shards: whatever the interleaving of concurrent claims, exactly one
sample of each group of near-duplicates is kept and every other names a kept one of its group;
a claimer that died holding reservations holds nothing after the lease."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from synthgen.engine.validators.dedup import FingerprintShard, bucket_keys, claim, fingerprints, shard_of

JACCARD = 0.8


class Remote:
    """An in-process shard answering after a random delay, as an actor on another node would:
    claims interleave at every step."""

    def __init__(self, shard: FingerprintShard, rng: random.Random):
        self.shard, self.rng = shard, rng

    def __getattr__(self, method):
        async def call(*args):
            await asyncio.sleep(self.rng.uniform(0, 0.003))
            return getattr(self.shard, method)(*args)

        return call


def _groups(rng: random.Random, groups: int, size: int) -> list[tuple[int, str]]:
    """`groups` unrelated 400-word texts, each with `size` variants a word or two apart (close
    enough that LSH never misses a pair: what is tested is the claims, not LSH's recall)."""
    vocabulary = [f"w{i}" for i in range(5000)]
    texts = []
    for group in range(groups):
        base = rng.choices(vocabulary, k=400)
        for _ in range(size):
            variant = list(base)
            variant[rng.randrange(400)] = rng.choice(vocabulary)
            texts.append((group, " ".join(variant)))
    return texts


async def _claim_all(shards, texts):
    prints = fingerprints([text for _, text in texts])
    return await asyncio.gather(*(claim(shards, f"r{i}", digest, signature, JACCARD)
                                  for i, (digest, signature) in enumerate(prints)))


@pytest.mark.parametrize("seed", range(4))
def test_one_kept_per_group_of_near_duplicates_over_shards(seed):
    rng = random.Random(seed)
    texts = _groups(rng, groups=6, size=8)
    rng.shuffle(texts)
    shards = [Remote(FingerprintShard(JACCARD, shard, 4), rng) for shard in range(4)]
    keys = bucket_keys(*fingerprints([texts[0][1]])[0], JACCARD)
    assert len({shard_of(key, 4) for key in keys}) > 1, "a sample's buckets span shards"

    firsts = asyncio.run(_claim_all(shards, texts))

    group_of = {f"r{i}": group for i, (group, _) in enumerate(texts)}
    kept = [f"r{i}" for i, first in enumerate(firsts) if first is None]
    assert sorted(group_of[record] for record in kept) == list(range(6)), "one kept per group"
    for i, first in enumerate(firsts):
        if first is not None:
            assert first in kept and group_of[first] == group_of[f"r{i}"]
    assert all(not shard.shard.reserved for shard in shards), "no reservation left behind"


def test_identical_answers_from_a_lazy_teacher_keep_one():
    rng = random.Random(7)
    shards = [Remote(FingerprintShard(JACCARD, shard, 3), rng) for shard in range(3)]
    firsts = asyncio.run(_claim_all(shards, [(0, "the same echoed prompt text")] * 40))
    kept = [i for i, first in enumerate(firsts) if first is None]
    assert len(kept) == 1 and set(firsts) == {None, f"r{kept[0]}"}


def test_a_claim_run_again_for_a_kept_record_is_still_the_first():
    shards = [FingerprintShard(JACCARD, shard, 2) for shard in range(2)]
    remote = [Remote(shard, random.Random(1)) for shard in shards]
    [(digest, signature)] = fingerprints(["a retried batch brings the same record again"])
    assert asyncio.run(claim(remote, "r1", digest, signature, JACCARD)) is None
    assert asyncio.run(claim(remote, "r1", digest, signature, JACCARD)) is None
    assert asyncio.run(claim(remote, "r2", digest, signature, JACCARD)) == "r1"


def test_reservations_of_a_dead_claimer_lapse():
    shard = FingerprintShard(JACCARD, lease_s=0.2)
    [(digest, signature)] = fingerprints(["a worker reserved this and died before keeping it"])
    keys = bucket_keys(digest, signature, JACCARD)
    assert shard.reserve("dead", keys, signature) == ("reserved", None)
    assert shard.reserve("alive", keys, signature) == ("busy", "dead")

    started = time.monotonic()
    assert asyncio.run(claim([Remote(shard, random.Random(2))], "alive", digest, signature, JACCARD)) is None
    assert time.monotonic() - started < 5
    assert shard.keep("dead") is False, "a lapsed reservation cannot be kept"
    assert shard.reserve("late", keys, signature) == ("duplicate", "alive")
