"""YAML with a memory of where every key stood, and pydantic errors told as `file:line: ...`.

Every config file (workflow, mixture recipe, curation config) is read through `load_config`, so
all of them give the same one-line errors: file, line, offending key and the valid choices.
"""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from synthgen.config.errors import UserError

Loc = tuple[str | int, ...]

_SCALARS = yaml.constructor.SafeConstructor()
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class LocatedYaml:
    """Parsed YAML data plus the line (1-based) of every mapping key and sequence item."""

    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]):
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, loc: Loc) -> int | None:
        """The line of the deepest known prefix of `loc`."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def where(self, loc: Loc) -> str:
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line else str(self.path)


def load_yaml(path: Path) -> LocatedYaml:
    """Read a YAML file, interpolate `${VAR}` / `${VAR:-default}`, remember key lines."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{line}: invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    lines: dict[Loc, int] = {}
    data = _to_python(root, (), lines, path) if root is not None else {}
    return LocatedYaml(path, data, lines)


def _to_python(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, loc + (key,), lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, loc + (i,), lines, path) for i, item in enumerate(node.value)]
    value = _SCALARS.construct_object(node, deep=True)
    if isinstance(value, str):
        return _interpolate(value, f"{path}:{node.start_mark.line + 1}")
    return value


def _interpolate(value: str, where: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise UserError(f"{where}: environment variable {name} is not set (write ${{{name}:-default}} for a fallback)")

    return _ENV_PATTERN.sub(substitute, value)


def load_config(model: type[BaseModel], path: str | Path, what: str, keys: str = "") -> Any:
    """The one way a config file is read: YAML with lines, a mapping at the top (`what` and its
    main `keys` name it in the error otherwise), `model` built with relative paths resolved
    against the file's folder."""
    source = load_yaml(Path(path))
    if not isinstance(source.data, dict):
        raise UserError(f"{source.path}: {what} must be a mapping of keys" + (f" ({keys})" if keys else ""))
    return validate(model, source, {"base_dir": source.path.parent.resolve()})


def validate(model: type[BaseModel], source: LocatedYaml, context: dict[str, Any] | None = None) -> Any:
    """Build `model` from the YAML data; the first error becomes a one-line UserError."""
    try:
        return model.model_validate(source.data, context=context)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also shows up as a missing one: name the misspelling first.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        raise UserError(describe_error(model, source, first)) from None


def describe_error(model: type[BaseModel], source: LocatedYaml, error: dict[str, Any]) -> str:
    tagged: Loc = tuple(error["loc"])
    # Union members are tagged "<kind>" in error locations; the YAML has no such level.
    loc: Loc = tuple(part for part in tagged if not (isinstance(part, str) and part.startswith("<")))
    dotted = _dotted(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(model, tagged[:-1])
        valid = ", ".join(_keys_of(parent)) if parent else "?"
        where_in = f" in {_dotted(loc[:-1])}" if loc[:-1] else ""
        return f"{source.where(loc)}: unknown key '{loc[-1]}'{where_in}; valid keys: {valid}"
    if kind == "missing":
        parent = _model_at(model, tagged[:-1])
        field = parent.model_fields.get(str(loc[-1])) if parent else None
        why = f" ({field.description})" if field is not None and field.description else ""
        return f"{source.where(loc[:-1])}: missing required key '{dotted}'{why}"
    if kind == "union_tag_invalid":  # a validator `kind:` (or a name) that no kind module declares
        tags = ", ".join(tag.strip(" '<>") for tag in str(error["ctx"]["expected_tags"]).split(","))
        return f"{source.where(loc)}: {dotted}: unknown kind '{str(error['ctx']['tag']).strip('<>')}'; valid kinds: {tags}"
    message = re.sub(r"'<([^'>]*)>'", r"'\1'", error["msg"])  # union tags, as the YAML spells them
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
        # Cross-field checks run on the whole model; they name the place as a dotted prefix.
        named = _NAMED_PLACE.match(message)
        if named and not loc:
            loc = _parse_dotted(named.group(1))
            return f"{source.where(loc)}: {message}"
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None or kind.startswith("value_error") else f" (got {got!r})"
    prefix = f"{dotted}: " if dotted else ""
    return f"{source.where(loc)}: {prefix}{message}{shown}"


_NAMED_PLACE = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*): ")


def _keys_of(model: type[BaseModel]) -> list[str]:
    """A model's keys as YAML spells them, its own before inherited ones (`id` first)."""
    inherited = {name for base in model.__bases__ for name in getattr(base, "model_fields", {})}
    own = set(model.__dict__.get("__annotations__", {})) - inherited
    names = sorted(model.model_fields, key=lambda n: (n != "id", n not in own))
    return [model.model_fields[n].alias or n for n in names]


def _parse_dotted(text: str) -> Loc:
    return tuple(int(part) if part.isdigit() else part for part in re.findall(r"[A-Za-z_]\w*|\d+", text))


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping found at `loc`."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return None
    return _first_model(current)


def _unwrap(annotation: Any, part: str | int) -> Any:
    if isinstance(part, str) and part.startswith("<"):
        return _tagged_member(annotation, part)
    model = _first_model(annotation, field=part if isinstance(part, str) else None)
    if isinstance(part, str) and model is not None:
        field = model.model_fields.get(part)
        return field.annotation if field else None
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (list, tuple) and isinstance(part, int):
        return args[0] if args else None
    if origin is dict and isinstance(part, str):
        return args[1] if len(args) == 2 else None
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _unwrap(arg, part)
            if found is not None:
                return found
    return None


def _tagged_member(annotation: Any, tag: str) -> Any:
    """The member of a tagged union (`Annotated[X, Tag(tag)]`) that carries `tag`."""
    for arg in typing.get_args(annotation):
        if any(getattr(meta, "tag", None) == tag for meta in getattr(arg, "__metadata__", ())):
            return typing.get_args(arg)[0]
        found = _tagged_member(arg, tag) if typing.get_args(arg) else None
        if found is not None:
            return found
    return None


def _first_model(annotation: Any, field: str | None = None) -> type[BaseModel] | None:
    """The model in `annotation` (possibly inside Optional/Union/Annotated) that has `field`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation if field is None or field in annotation.model_fields else None
    for arg in typing.get_args(annotation):
        found = _first_model(arg, field)
        if found is not None:
            return found
    return None
