"""Pivotal Token Search against a policy whose pivotal tokens are known: recall of the planted
pivots, near-misses reported, and samples spent against a naive scan of every prefix.

Each sequence is a problem of the scripted policy (synthgen/scripted_policy.py): about 220 tokens,
three planted decisions that move P(success) by 0.3 to 0.45 (up or down at random), four
near-misses that move it by about 0.05, and the answer token at the end. The policy's answer is
searched by the real `pivotal_tokens` step: the engine's runner, the teacher client over HTTP,
the verify validator as oracle. The ground truth is exact (the policy's P of every prefix):

- planted pivot: a token whose exact |dP| >= 0.3; recall = share of them found;
- near-miss: a token whose exact |dP| < 0.1 (every filler word, every weak decision); none may
  be reported;
- samples: continuations drawn by the search (and, apart, by the alternatives for the pairs);
  a naive scan estimates every prefix with the same most samples per estimate.

    python bench/pts.py                       # 30 sequences, chat continuation
    python bench/pts.py --style completions --sequences 10
    python bench/pts.py --span 0              # the report's single-segment subdivision
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthgen.engine.cache import ResponseCache  # noqa: E402
from synthgen.engine.records import Seed  # noqa: E402
from synthgen.engine.registry import load_workflow  # noqa: E402
from synthgen.engine.workflow import run_seeds  # noqa: E402
from synthgen.scripted_policy import MARK, PolicyServer, pieces, plant, search_workflow, truth  # noqa: E402

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--style", choices=["chat_prefill", "completions"], default="chat_prefill")
    parser.add_argument("--span", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--min-samples", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.2)
    args = parser.parse_args()

    problems = [plant(random.Random(number)) for number in range(args.sequences)]
    seeds = [Seed.create("qa", f"Work it out.\n{MARK}{p.to_json()}", "bench") for p in problems]
    with tempfile.TemporaryDirectory() as folder, PolicyServer() as server:
        path = Path(folder) / "w.yaml"
        path.write_text(search_workflow(server.url, style=args.style, threshold=args.threshold,
                                        min_samples=args.min_samples, samples=args.samples, span=args.span))
        (Path(folder) / "seeds.jsonl").write_text("")
        workflow = load_workflow(path)
        began = time.monotonic()
        results = asyncio.run(run_seeds(workflow, seeds, ResponseCache(Path(folder) / "cache")))
        wall = time.monotonic() - began
        requests = len(server.generations())

    planted = found = near_reported = below_reported = above_reported = tokens = pairs = 0
    pair_samples = 0
    for problem, result in zip(problems, results):
        item = (result.records or result.rejects)[0]
        answer = item.fields["solution"]
        exact = truth(problem, answer)
        reported = {p["position"]: p for p in json.loads(item.fields.get("pivots") or "[]")}
        changes = [exact[i + 1] - exact[i] for i in range(len(exact) - 1)]
        pivots = {i for i, change in enumerate(changes) if abs(change) >= 0.3}
        planted += len(pivots)
        found += len(pivots & set(reported))
        for position in (i for i in reported if abs(changes[i]) < 0.1):
            near_reported += 1
            wrong = reported[position]
            print(f"  near-miss reported: sequence {problems.index(problem)}, token {position} {wrong['token']!r}: exact "
                  f"{exact[position]:.3f} -> {exact[position + 1]:.3f}, estimated {wrong['p_before']} -> "
                  f"{wrong['p_after']} ({wrong['samples']} samples)")
        below_reported += sum(0.1 <= abs(changes[i]) < args.threshold for i in reported)
        above_reported += sum(args.threshold <= abs(changes[i]) < 0.3 for i in reported)
        tokens += len(pieces(answer))
        pairs += len(result.records)
        paid = [t for r in (*result.records, *result.rejects) for t in r.turns if t.purpose == "pts_sample"]
        pair_samples += len(paid)
    naive = tokens * args.samples
    print(f"PTS bench: {args.sequences} sequences of {tokens / args.sequences:.0f} tokens on average, "
          f"continuation by {args.style}, span {args.span}, samples {args.min_samples}-{args.samples}, "
          f"threshold {args.threshold}")
    print(f"  planted pivots (exact |dP| >= 0.3): {planted}; found {found} -> recall {found / planted:.1%}")
    print(f"  near-misses reported (exact |dP| < 0.1): {near_reported}")
    print(f"  also reported: {above_reported} real changes of {args.threshold}-0.3 (pivotal, not planted), "
          f"{below_reported} of 0.1-{args.threshold} (just below the threshold)")
    print(f"  pairs: {pairs}")
    print(f"  samples drawn (search and alternatives): {pair_samples} = {pair_samples / args.sequences:.0f} per sequence, "
          f"{pair_samples / max(found, 1):.0f} per planted pivot found")
    print(f"  naive scan of every prefix at {args.samples} samples: {naive} = {naive / args.sequences:.0f} per sequence "
          f"-> the search draws {naive / pair_samples:.1f}x fewer")
    print(f"  teacher requests {requests} in {wall:.1f} s ({requests / wall:.0f}/s)")


if __name__ == "__main__":
    main()
