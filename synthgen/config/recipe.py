"""The mixture recipe schema: pure data, like the workflow schema, with the same error quality.

A recipe names sources (synthgen run directories, or any Parquet/JSONL with a column mapping),
a weight for each, by tokens or by rows, optional caps, up-sampling limits and DuckDB filters,
and the output: format, shard size, shuffle seed, tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from synthgen.config.base import Strict, StoragePath
from synthgen.config.yaml_source import load_config


class Columns(Strict):
    """Where the conversation is in a source that is not a synthgen run."""

    messages: str | None = Field(None, description="a list of {role, content}")
    prompt: str | None = Field(None, description="a string, or a list of {role, content}")
    completion: str | None = None
    chosen: str | None = Field(None, description="with rejected: a preference pair (format: preference)")
    rejected: str | None = None
    system: str | None = None
    text: str | None = Field(None, description="already rendered text (only for format: text)")

    @model_validator(mode="after")
    def _one_shape(self) -> Columns:
        shapes = [bool(self.messages), bool(self.prompt and self.completion), bool(self.text),
                  bool(self.prompt and self.chosen and self.rejected)]
        if sum(shapes) != 1 or bool(self.chosen) != bool(self.rejected):
            raise ValueError("map exactly one of: messages, prompt + completion, text, prompt + chosen + rejected")
        return self

    @property
    def pairs(self) -> bool:
        return bool(self.chosen)


class Source(Strict):
    name: str
    path: StoragePath = Field(description="a synthgen run directory, or a Parquet/JSONL file or folder")
    weight: float = Field(gt=0, description="share of the mixture (normalised over all sources)")
    columns: Columns | None = Field(None, description="needed unless the path is a synthgen run")
    filter: str | None = Field(None, description="DuckDB SQL predicate over the source's columns")
    max_rows: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_repeat: float = Field(1.0, ge=1.0, description="up-sampling limit: 2.0 lets each row appear twice")


class Recipe(Strict):
    name: str
    sources: list[Source] = Field(min_length=1)
    weight_by: Literal["tokens", "rows"] = "tokens"
    total: int | None = Field(None, ge=1, description="target size in weight_by units; default: as large as the sources allow")
    format: Literal["messages", "text", "prompt_completion", "preference"] = Field(
        "messages", description="preference: TRL's prompt/chosen/rejected rows, from pair-making runs")
    chat_template: Literal["chatml"] = "chatml"
    shard_rows: int = Field(10_000, ge=1)
    seed: int = 0
    tokenizer: str = Field("embedded", description="embedded (the local teacher's vocabulary, offline), whitespace, or hf:NAME")
    memory_mb: int = Field(1024, ge=64, description="DuckDB's memory limit: larger inputs spill to disk")

    @model_validator(mode="after")
    def _distinct_names(self) -> Recipe:
        names = [source.name for source in self.sources]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"sources[{index}].name: duplicate source name '{name}'")
        return self


def load_recipe(path: str | Path) -> Recipe:
    return load_config(Recipe, path, "a recipe", "name, sources, ...")
