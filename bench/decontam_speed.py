"""Decontamination speed and accuracy, in one process (figures are per core: docs per CPU second).

Corpus: N documents of ~300 words drawn from a Zipf vocabulary; reference index: HumanEval plus
10,000 such documents (a local benchmark file), of which 1 % of the corpus are lightly edited
copies. Stages timed separately: word hashing + signatures, LSH query, n-gram check, the whole
validator; datasketch's per-shingle `MinHash.update` on a slice for comparison; code
normalisation on the planted HumanEval set; recall and false positives on the planted set.

    python bench/decontam_speed.py               # 100,000 documents
    python bench/decontam_speed.py --docs 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from planted import DISGUISES, clean_texts, planted_set  # noqa: E402

from synthgen.engine.codenorm import code_parts, normalize  # noqa: E402
from synthgen.engine.references import Params, ReferenceIndex  # noqa: E402
from synthgen.engine.shingles import ngram_hashes, signatures, word_hashes  # noqa: E402

BATCH = 256
WORDS = 300


def corpus(count: int, rng: np.random.Generator, vocabulary: list[str]) -> list[str]:
    ranks = rng.zipf(1.2, size=(count, WORDS)) % len(vocabulary)
    return [" ".join(vocabulary[i] for i in row) for row in ranks]


def cpu_rate(label: str, count: int, work) -> float:
    started = time.process_time()
    work()
    rate = count / max(time.process_time() - started, 1e-9)
    print(f"  {label:<44} {rate:>10,.0f} docs/s per core")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    vocabulary = [f"{w}{i}" for i, w in enumerate(["alpha", "beta", "gamma", "delta", "omega", "sigma"] * 8000)]
    references = corpus(10_000, rng, vocabulary)
    docs = corpus(args.docs, rng, vocabulary)
    planted_positions = rng.choice(args.docs, size=args.docs // 100, replace=False)
    for position in planted_positions:  # a reference document with a few words changed
        words = references[int(position) % len(references)].split()
        for k in rng.choice(len(words), size=6, replace=False):
            words[k] = "edited"
        docs[position] = " ".join(words)
    with tempfile.TemporaryDirectory() as work:
        bench_file = Path(work) / "local_bench.jsonl"
        bench_file.write_text("\n".join(json.dumps({"id": f"ref-{i}", "text": t}) for i, t in enumerate(references)))
        started = time.perf_counter()
        index = ReferenceIndex.open(["humaneval", {"path": str(bench_file), "name": "local", "id_field": "id"}], Params(),
                                    cache_root=Path(work) / "cache")
        print(f"index: {len(index.refs):,} reference texts, {len(index.ngram_keys):,} 13-grams, built in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"{args.docs:,} documents of {WORDS} words, batches of {BATCH}:")
        batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]
        sigs = []
        cpu_rate("word hashing + 5-gram MinHash signatures", len(docs),
                 lambda: sigs.extend(signatures(ngram_hashes(word_hashes(b), 5)) for b in batches))
        from datasketch import LeanMinHash

        all_sigs = np.concatenate(sigs)
        cpu_rate("LSH query (datasketch MinHashLSH)", len(docs),
                 lambda: [index.lsh.query(LeanMinHash(seed=1, hashvalues=row, scheme="affine64")) for row in all_sigs])
        cpu_rate("13-gram check (hashing + lookup)", len(docs),
                 lambda: [index._ngram(word_hashes(b), [None] * len(b)) for b in batches])
        hits: list = []
        whole = cpu_rate("whole validator (exact, 13-gram, MinHash, code)", len(docs),
                         lambda: [hits.extend(index.check(b)) for b in batches])
        caught = sum(hits[int(p)] is not None for p in planted_positions)
        false = sum(h is not None for h in hits) - caught
        print(f"  edited reference copies caught: {caught}/{len(planted_positions)}; other documents flagged: {false}")

        from datasketch import MinHash

        slice_ = docs[:2000]

        def per_shingle():
            for doc in slice_:
                words = doc.split()
                minhash = MinHash(num_perm=128)
                for k in range(len(words) - 4):
                    minhash.update(" ".join(words[k : k + 5]).encode())

        slow = cpu_rate("datasketch MinHash.update per shingle (2,000 docs)", len(slice_), per_shingle)
        print(f"  whole validator vs datasketch signatures alone: {whole / slow:.0f}x")

    planted = planted_set()
    code = [text for _, _, text in planted]
    cpu_rate("code normalisation (planted HumanEval set)", len(code),
             lambda: [normalize(part) for text in code for part in code_parts(text)])
    clean = clean_texts()
    found = index.check([text for _, _, text in planted])
    per_kind = Counter(how for (_, how, _), hit in zip(planted, found) if hit is not None)
    totals = Counter(how for _, how, _ in planted)
    print("planted HumanEval disguises caught: " + ", ".join(f"{how} {per_kind[how]}/{totals[how]}" for how in DISGUISES))
    print(f"  recall {sum(per_kind.values())}/{len(planted)} = {sum(per_kind.values()) / len(planted):.3f}; "
          f"false positives on clean texts: {sum(h is not None for h in index.check(clean))}/{len(clean)}")


if __name__ == "__main__":
    main()
