"""`synthgen seeds curate`: raw organic sources in, high-value diverse seeds out.

extract (the seed loaders: code definitions with their imports, Markdown/text/HTML sections,
Q&A rows, code datasets holding whole files) -> heuristic filters (on Ray above `ray_above`
candidates) -> exact and near dedup -> educational value (teacher grader on a sample, a
classifier trained on it for the rest, or a saved classifier) -> topic tags, per-topic caps ->
seeds Parquet (what `seeds:` of a workflow reads unchanged), rejects Parquet, summary JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.config.base import EMBEDDED
from synthgen.config.curate import CurateConfig, load_curate_config
from synthgen.config.errors import UserError
from synthgen.config.workflow import SeedSource
from synthgen.engine.embedded_teacher import EmbeddedTeacher
from synthgen.engine.userdirs import cache_dir
from synthgen.engine.validators.dedup import FingerprintShard, first_claims
from synthgen.pipelines.curate.filters import check, topics
from synthgen.pipelines.curate.scoring import Classifier, judge
from synthgen.runtime.cluster import map_rows
from synthgen.seeds.load import SeedCounts, SeedSet, load_seeds
from synthgen.seeds.read import read_seeds

log = logging.getLogger("synthgen")
BATCH = 2000


def curate(sources: list[Path], config: CurateConfig, out: Path) -> dict:
    if out.suffix != ".parquet":
        raise UserError(f"--out must name a .parquet file, got {out}")
    rejects: list[dict] = []
    candidates = _extract(sources, config, rejects)
    if not candidates:
        raise UserError(f"no seed candidates in {', '.join(map(str, sources))}")
    kept = _filter(candidates, config, rejects)
    kept = _dedup(kept, config, rejects)
    _score(kept, config, out)
    if config.min_score > 0:
        low = [c for c in kept if c["score"] is None or c["score"] < config.min_score]
        rejects += [_reject(c, f"educational value {c['score']} below {config.min_score:g}") for c in low]
        kept = [c for c in kept if c not in low]
    kept = _diversify(kept, config, rejects)
    return _write(out, candidates, kept, rejects, config)


def curated_source(source: SeedSource) -> tuple[SeedSource, SeedCounts]:
    """A workflow's `seeds.curate`: the source curated once per content of source and config
    (cached) into a plain source, and curation's rejects counted as skipped seeds, with reasons."""
    path, config_path = Path(source.path), Path(source.curate)
    if not path.exists():
        raise UserError(f"seed path not found: {path}")
    key = hashlib.sha256(f"{path.resolve()}|{config_path.read_text() if config_path.is_file() else ''}".encode()).hexdigest()[:16]
    out = cache_dir("curated") / key / "seeds.parquet"
    curate([path], load_curate_config(config_path), out)
    curation = SeedCounts()
    for reject in pq.read_table(out.with_suffix(".rejects.parquet"), columns=["source", "reason"]).to_pylist():
        curation.skip(f"{reject['source']}: {reject['reason']}")
    plain = source.model_copy(update={"path": str(out), "curate": None, "format": "parquet", "kind": None,
                                      "text_field": "text", "min_chars": 1})
    return plain, curation


def curated_seeds(source: SeedSource) -> SeedSet:
    """The curated seeds in memory (estimates, tests)."""
    plain, curation = curated_source(source)
    result = load_seeds(plain)
    curation.add(result.counts)
    return SeedSet(result.seeds, curation)


def _extract(sources: list[Path], config: CurateConfig, rejects: list[dict]) -> list[dict]:
    candidates = []
    for path in sources:
        if not path.exists():
            raise UserError(f"source not found: {path}")
        unreadable: list[str] = []
        spec = SeedSource(path=str(path), kind=config.kind, chunk_chars=config.chunk_chars, min_chars=1)
        headers: dict[str, str] = {}
        for seed in read_seeds(path, spec, unreadable.append):
            file = seed.source.rsplit(":", 1)[0].split("#row")[0]
            if file not in headers:  # generated-code markers sit in the file's first lines, not in the function
                headers[file] = _head(Path(file))
            relative = str(Path(file).relative_to(path)) if path.is_dir() else Path(file).name
            candidates.append({"seed_id": seed.seed_id, "kind": seed.kind, "text": seed.text, "source": seed.source,
                               "path": relative, "header": headers[file], "meta": seed.meta})
        for problem in unreadable:
            where, _, what = problem.partition(": ")
            rejects.append({"seed_id": "", "kind": "", "source": where, "reason": f"unreadable: {what}", "text": ""})
    return candidates


def _head(file: Path) -> str:
    if file.suffix != ".py":
        return ""
    with file.open(encoding="utf-8", errors="replace") as handle:
        return handle.read(1000)


def _filter(candidates: list[dict], config: CurateConfig, rejects: list[dict]) -> list[dict]:
    if len(candidates) > config.ray_above:
        reasons = _reasons_on_ray(candidates, config)
    else:
        reasons = [check(candidate, config) for candidate in candidates]
    kept = []
    for candidate, reason in zip(candidates, reasons):
        if reason is None:
            kept.append(candidate)
        else:
            rejects.append(_reject(candidate, reason))
    return kept


def _reasons_on_ray(candidates: list[dict], config: CurateConfig) -> list[str | None]:
    """The filters as Ray tasks, one per batch of candidates (order kept)."""
    rows = [{"position": i, "kind": c["kind"], "text": c["text"], "path": c["path"], "header": c["header"]}
            for i, c in enumerate(candidates)]
    reasons: list[str | None] = [None] * len(candidates)
    for batch in map_rows(rows, _filter_batch, {"settings": config.model_dump()}, BATCH):
        for position, reason in zip(batch.column("position").to_pylist(), batch.column("reason").to_pylist()):
            reasons[position] = reason
    return reasons


def _filter_batch(batch: pa.Table, settings: dict) -> pa.Table:
    config = CurateConfig.model_validate(settings)
    reasons = [check(row, config) for row in batch.select(["kind", "text", "path", "header"]).to_pylist()]
    return pa.table({"position": batch.column("position"), "reason": pa.array(reasons, pa.string())})


def _dedup(candidates: list[dict], config: CurateConfig, rejects: list[dict]) -> list[dict]:
    registry = FingerprintShard(config.near_dedup or 1.0)
    kept, first_by_id = [], {}
    for start in range(0, len(candidates), BATCH):
        unique = []
        for candidate in candidates[start : start + BATCH]:
            if candidate["seed_id"] in first_by_id:
                rejects.append(_reject(candidate, f"exact duplicate of seed {candidate['seed_id']} ({first_by_id[candidate['seed_id']]})"))
            else:
                first_by_id[candidate["seed_id"]] = candidate["source"]
                unique.append(candidate)
        if not config.near_dedup:
            kept += unique
            continue
        for candidate, earlier in zip(unique, first_claims(registry, [c["seed_id"] for c in unique], [c["text"] for c in unique])):
            if earlier is not None:
                rejects.append(_reject(candidate, f"near-duplicate of seed {earlier}"))
            else:
                kept.append(candidate)
    return kept


def _score(candidates: list[dict], config: CurateConfig, out: Path) -> None:
    for candidate in candidates:
        candidate.update(score=None, judge_score=None, classifier_score=None, rationale="")
    classifier = Classifier.load(Path(config.classifier)) if config.classifier else None
    if config.judge is not None:
        sample = candidates[: config.judge.sample] if config.judge.sample else candidates
        grades = _grade(sample, config, out)
        for candidate in sample:
            if candidate["seed_id"] in grades:
                candidate["judge_score"], candidate["rationale"] = grades[candidate["seed_id"]]
        graded = [c for c in sample if c["judge_score"] is not None]
        if len({c["judge_score"] for c in graded}) > 1:  # a constant grader teaches a classifier nothing
            classifier = Classifier().fit([c["text"] for c in graded], [c["judge_score"] for c in graded])
            classifier.save(out.with_suffix(".classifier.pkl"))
    if classifier is not None:
        for candidate, value in zip(candidates, classifier.predict([c["text"] for c in candidates])):
            candidate["classifier_score"] = round(value, 3)
    for candidate in candidates:
        candidate["score"] = candidate["judge_score"] if candidate["judge_score"] is not None else candidate["classifier_score"]
    if config.min_score > 0 and all(c["score"] is None for c in candidates):
        raise UserError("min_score needs scores: configure judge: (a teacher) or classifier: (a saved one)")


def _grade(sample: list[dict], config: CurateConfig, out: Path) -> dict[str, tuple[float, str]]:
    teacher = config.judge.teacher.model_copy()
    with contextlib.ExitStack() as stack:
        if teacher.base_url == EMBEDDED:
            teacher.base_url = stack.enter_context(EmbeddedTeacher(out.parent / f"{out.stem}.teacher.log")).url
        # One cache per output folder: curating again (other filters, other name) repays nothing.
        return judge(sample, teacher, out.parent / ".curate-cache")


def _diversify(candidates: list[dict], config: CurateConfig, rejects: list[dict]) -> list[dict]:
    for candidate in candidates:
        candidate["tags"] = topics(candidate["text"], config.topics)
    if config.max_per_topic is None:
        return candidates
    ranked = sorted(candidates, key=lambda c: -(c["score"] or 0))
    counts: Counter[str] = Counter()
    kept_ids = set()
    for candidate in ranked:
        topic = candidate["tags"][0]
        if counts[topic] >= config.max_per_topic:
            rejects.append(_reject(candidate, f"topic cap: {topic} already has {config.max_per_topic} seeds"))
        else:
            counts[topic] += 1
            kept_ids.add(candidate["seed_id"])
    return [c for c in candidates if c["seed_id"] in kept_ids]


def _reject(candidate: dict, reason: str) -> dict:
    return {"seed_id": candidate["seed_id"], "kind": candidate["kind"], "source": candidate["source"], "reason": reason,
            "text": candidate["text"]}


def _write(out: Path, candidates: list[dict], kept: list[dict], rejects: list[dict], config: CurateConfig) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [{
        "seed_id": c["seed_id"], "kind": c["kind"], "text": c["text"], "score": c["score"],
        "judge_score": c["judge_score"], "classifier_score": c["classifier_score"], "rationale": c["rationale"],
        "tags": c["tags"], "source": c["source"].rsplit(":", 1)[0], "lines": c["meta"].get("lines", c["source"].rsplit(":", 1)[-1]),
        "meta": json.dumps(c["meta"], ensure_ascii=False),
    } for c in kept]
    schema = pa.schema([("seed_id", pa.string()), ("kind", pa.string()), ("text", pa.string()), ("score", pa.float64()),
                        ("judge_score", pa.float64()), ("classifier_score", pa.float64()), ("rationale", pa.string()),
                        ("tags", pa.list_(pa.string())), ("source", pa.string()), ("lines", pa.string()), ("meta", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out, compression="zstd")
    reject_schema = pa.schema([(name, pa.string()) for name in ("seed_id", "kind", "source", "reason", "text")])
    rejects_path = out.with_suffix(".rejects.parquet")
    pq.write_table(pa.Table.from_pylist(rejects, schema=reject_schema), rejects_path, compression="zstd")
    by_reason = Counter(_reason_class(r["reason"]) for r in rejects)
    coverage = Counter(c["tags"][0] for c in kept)
    summary = {
        "candidates": len(candidates), "kept": len(kept),
        "unreadable": sum(r["reason"].startswith("unreadable") for r in rejects),
        "rejected": sum(not r["reason"].startswith("unreadable") for r in rejects),
        "rejected_by_reason": dict(by_reason.most_common()),
        "kept_by_kind": dict(Counter(c["kind"] for c in kept)),
        "coverage": {topic: coverage.get(topic, 0) for topic in [*config.topics, "other"]},
        "scored": sum(c["score"] is not None for c in kept),
        "outputs": {"seeds": str(out), "rejects": str(rejects_path)},
    }
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _reason_class(reason: str) -> str:
    """Reasons without their particulars (seed ids), so the summary counts kinds of reasons."""
    for prefix in ("exact duplicate", "near-duplicate", "topic cap", "educational value"):
        if reason.startswith(prefix):
            return prefix
    return reason
