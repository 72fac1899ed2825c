"""Decontamination settings, shared by the seeds block (screening seeds) and the `decontaminate`
validator (screening samples): which benchmarks, and how close counts as a leak."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from pydantic import Field, ValidationInfo, field_validator

from synthgen.config.base import Strict, resolve_path

BENCHMARK_REGISTRY = Path(__file__).resolve().parents[2] / "validators" / "benchmarks.yaml"


class BenchmarkFile(Strict):
    """A local JSONL/Parquet benchmark (or `hf:NAME[:split]` when the hub is reachable)."""

    path: str
    name: str | None = None
    id_field: str | None = None
    fields: list[str] | None = Field(None, description="text fields to index (default: every string field)")
    code_fields: list[str] = Field(default_factory=list, description="fields compared in canonical code form")

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        return value if value.startswith("hf:") else str(resolve_path(value, info))


def known_benchmarks() -> dict[str, dict]:
    """Benchmark reference sets by name: validators/benchmarks.yaml, plus the built-in humaneval."""
    import yaml

    named = yaml.safe_load(BENCHMARK_REGISTRY.read_text()) if BENCHMARK_REGISTRY.is_file() else {}
    return {name: {"name": name, **spec} for name, spec in (named or {}).items()}


class Decontamination(Strict):
    """Reject what leaks benchmark items: exact, n-gram overlap, MinHash, canonical code."""

    benchmarks: list[Union[str, BenchmarkFile]] = Field(default_factory=lambda: ["humaneval"],
                                                       description="names (humaneval, or validators/benchmarks.yaml) or files")
    ngram: int = Field(13, ge=3, le=50, description="words per n-gram for the overlap check")
    min_overlap: int = Field(1, ge=1, description="shared n-grams that flag a sample")
    jaccard: float = Field(0.8, gt=0, le=1, description="MinHash similarity that flags a sample")
    code_ngram: int = Field(10, ge=3, le=50, description="tokens per n-gram of canonical code")
    code_containment: float = Field(0.6, gt=0, le=1, description="share of a benchmark solution's code n-grams found")

    @field_validator("benchmarks")
    @classmethod
    def _known_names(cls, value: list) -> list:
        names = {"humaneval", *known_benchmarks()}
        for item in value:
            if isinstance(item, str) and item not in names:
                raise ValueError(f"unknown benchmark '{item}'; valid names: {', '.join(sorted(names))} (or {{path: FILE}})")
        return value
