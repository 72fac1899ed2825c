"""`novelty`: an answer must not copy what it was given. Each checked field is compared with the
seed, with every field made before it and with the prompt that asked for it; copying half of its
word 4-grams from any one of them rejects the sample, naming the source and the overlap. A
teacher that echoes its input, or repeats the previous turn, produces nothing here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.config.base import SEED_VARIABLE
from synthgen.config.kinds import ValidatorSpec, field_list_refs
from synthgen.engine.textstats import copied_fraction
from synthgen.engine.validators.base import Check, Inputs, TextGate, ValidatorKind, field_texts


class NoveltySpec(ValidatorSpec):
    """Reject answers that copy the seed, an earlier field or their own prompt."""

    kind: Literal["novelty"] = "novelty"
    fields: list[str] | None = Field(None, description="fields checked (default: every free-text answer)")
    max_copied: float = Field(0.5, gt=0, le=1, description="share of a field's word n-grams found in one source that rejects it")
    ngram: int = Field(4, ge=2, le=13, description="words per n-gram")
    against: list[Literal["seed", "fields", "prompt"]] = Field(
        default_factory=lambda: ["seed", "fields", "prompt"],
        description="what an answer must not copy: the seed, earlier fields, its own prompt (leave out the seed "
        "when it holds a reference answer a right answer resembles)")

    def field_refs(self) -> dict[str, str]:
        return field_list_refs(self.fields)


class NoveltyCheck(TextGate):
    async def check(self, inputs: Inputs, record_id: str = "") -> Check:
        texts = field_texts(inputs.fields, None)
        order = list(texts)
        seed = inputs.fields.get(SEED_VARIABLE) or {}
        for name in (field for field in self.fields if field in texts):
            against = self.spec.against
            sources = {"the seed": str(seed.get("text", ""))} if "seed" in against else {}
            if "fields" in against:
                sources.update({f"the field '{f}'": texts[f] for f in order[: order.index(name)]})
            if "prompt" in against and name in inputs.prompts:
                sources["its own prompt"] = inputs.prompts[name]
            source, copied = max(((s, copied_fraction(texts[name], text, self.spec.ngram)) for s, text in sources.items()),
                                 key=lambda item: item[1], default=("", 0.0))
            if copied >= self.spec.max_copied:
                return Check(False, f"{name} copies {source}: {copied:.0%} of its {self.spec.ngram}-word runs",
                             f"Your answer repeats {source} almost word for word ({copied:.0%} of it). "
                             "Write a new answer in your own words.")
        return Check(True, "no copied answer")


KIND = ValidatorKind("novelty", NoveltySpec, NoveltyCheck)
