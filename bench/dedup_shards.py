"""Run-wide dedup over fingerprint shards: claims per second as workers on a local Ray instance
claim samples through 1, 2 and 4 shard actors (the actors `synthgen run` starts for a dedup
validator), a fifth of the samples near-duplicates of others. Prints claims/s and kept counts
per shard count (the kept counts must agree: the shards split the buckets, not the decisions).

    python bench/dedup_shards.py [--samples 20000] [--shards 1,2,4] [--claimers 2] [--in-flight 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

import ray

from synthgen.engine.validators.dedup import DedupSpec, claim, fingerprints
from synthgen.runtime.shared import ActorState, SharedStateActor

JACCARD = 0.8


def samples(count: int, rng: random.Random) -> list[str]:
    vocabulary = [f"w{i}" for i in range(20000)]
    originals = [rng.choices(vocabulary, k=120) for _ in range(count - count // 5)]
    texts = [" ".join(words) for words in originals]
    for _ in range(count // 5):
        variant = list(rng.choice(originals))
        variant[rng.randrange(len(variant))] = rng.choice(vocabulary)
        texts.append(" ".join(variant))
    rng.shuffle(texts)
    return texts


@ray.remote(num_cpus=0)
class Claimer:
    def __init__(self, shards: list, texts: list[str], first_id: int):
        self.shards = [ActorState(shard) for shard in shards]
        self.prints = fingerprints(texts)
        self.first_id = first_id

    async def run(self, in_flight: int) -> int:
        gate = asyncio.Semaphore(in_flight)

        async def one(index: int):
            async with gate:
                digest, signature = self.prints[index]
                return await claim(self.shards, f"r{self.first_id + index}", digest, signature, JACCARD)

        firsts = await asyncio.gather(*(one(index) for index in range(len(self.prints))))
        return sum(first is None for first in firsts)


def measure(texts: list[str], shard_count: int, claimers: int, in_flight: int) -> tuple[float, int]:
    spec = DedupSpec(jaccard=JACCARD)
    shards = [SharedStateActor.remote(spec, shard, shard_count) for shard in range(shard_count)]
    share = -(-len(texts) // claimers)
    workers = [Claimer.remote(shards, texts[i * share:(i + 1) * share], i * share) for i in range(claimers)]
    ray.get([worker.__ray_ready__.remote() for worker in workers + shards])
    started = time.perf_counter()
    kept = sum(ray.get([worker.run.remote(in_flight) for worker in workers]))
    elapsed = time.perf_counter() - started
    for actor in workers + shards:
        ray.kill(actor)
    return len(texts) / elapsed, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--claimers", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    texts = samples(args.samples, random.Random(0))
    print(f"{args.samples} samples, {args.claimers} claimers x {args.in_flight} in flight, {os.cpu_count()} cores")
    print(f"{'shards':>6} {'claims/s':>9} {'kept':>7} {'vs 1 shard':>10}")
    base = None
    for shard_count in (int(s) for s in args.shards.split(",")):
        rate, kept = measure(texts, shard_count, args.claimers, args.in_flight)
        base = base or rate
        print(f"{shard_count:>6} {rate:>9.0f} {kept:>7} {rate / base:>9.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
