"""`decontaminate`: reject a sample when any of its fields leaks a benchmark item."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.config.decontamination import Decontamination
from synthgen.config.errors import UserError
from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.references import Params, ReferenceIndex, ReferenceSetError
from synthgen.engine.validators.base import Check, Inputs, ValidatorKind, field_texts


class DecontaminateSpec(ValidatorSpec, Decontamination):
    """Reject samples that leak benchmark items: exact, n-gram overlap, MinHash, canonical code."""

    kind: Literal["decontaminate"] = "decontaminate"
    fields: list[str] | None = Field(None, description="fields to check (default: every field)")

    def field_refs(self) -> dict[str, str]:
        return field_list_refs(self.fields)


def index_for(settings: Decontamination, where: str) -> ReferenceIndex:
    """The reference index of these settings (built once per content, then memory-mapped);
    an unreadable benchmark is the user's to fix, named with `where`."""
    sources = [b if isinstance(b, str) else b.model_dump(exclude_none=True) for b in settings.benchmarks]
    params = Params(ngram=settings.ngram, min_overlap=settings.min_overlap, jaccard=settings.jaccard,
                    code_ngram=settings.code_ngram, code_containment=settings.code_containment)
    try:
        return ReferenceIndex.open(sources, params)
    except ReferenceSetError as exc:
        raise UserError(f"{where}: {exc}") from None


class DecontaminateCheck:
    def __init__(self, name: str, spec: DecontaminateSpec):
        self.name = name
        self.spec = spec
        self.fields = tuple(spec.fields or ())
        self.index = index_for(spec, f"validator {name}")

    async def check(self, inputs: Inputs, record_id: str = "") -> Check:
        texts = field_texts(inputs.fields, self.spec.fields)
        for (field, _), hit in zip(texts.items(), self.index.check(list(texts.values()))):
            if hit is not None:
                return Check(False, hit.describe(), f"the field '{field}' reproduces {hit.benchmark} item {hit.item_id} "
                                                    f"({hit.method}, score {hit.score:.2f})")
        return Check(True, f"clean against {len(self.index.refs)} reference texts")


def prepare(name: str, spec: DecontaminateSpec, workflow) -> None:
    """Build the index once, in the driver, before Ray starts: every worker then maps it."""
    index_for(spec, f"validator {name}")


KIND = ValidatorKind("decontaminate", DecontaminateSpec, lambda name, spec, services: DecontaminateCheck(name, spec),
                     prepare=prepare)
