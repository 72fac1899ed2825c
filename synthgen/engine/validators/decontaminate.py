"""`decontaminate`: reject a sample when any of its fields leaks a benchmark item."""

from __future__ import annotations

import json
from typing import Any

from synthgen.config import SEED_VARIABLE, DecontaminateValidator
from synthgen.engine.references import Params, ReferenceIndex
from synthgen.engine.validators.base import Check


def index_for(spec: DecontaminateValidator) -> ReferenceIndex:
    sources = [b if isinstance(b, str) else b.model_dump(exclude_none=True) for b in spec.benchmarks]
    params = Params(ngram=spec.ngram, min_overlap=spec.min_overlap, jaccard=spec.jaccard,
                    code_ngram=spec.code_ngram, code_containment=spec.code_containment)
    return ReferenceIndex.open(sources, params)


def field_texts(fields: dict[str, Any], names: list[str] | None) -> dict[str, str]:
    """The sample's fields as text (structured ones as JSON); the seed is not the sample's."""
    chosen = names or [name for name in fields if name != SEED_VARIABLE]
    return {name: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
            for name in chosen if (value := fields.get(name)) is not None}


class DecontaminateCheck:
    def __init__(self, name: str, spec: DecontaminateValidator):
        self.name = name
        self.spec = spec
        self.fields = tuple(spec.fields or ())
        self.index = index_for(spec)

    async def check(self, fields: dict[str, Any], record_id: str = "") -> Check:
        texts = field_texts(fields, self.spec.fields)
        for (field, _), hit in zip(texts.items(), self.index.check(list(texts.values()))):
            if hit is not None:
                return Check(False, hit.describe(), f"the field '{field}' reproduces {hit.benchmark} item {hit.item_id} "
                                                    f"({hit.method}, score {hit.score:.2f})")
        return Check(True, f"clean against {len(self.index.refs)} reference texts")
