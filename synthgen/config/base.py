"""What every config model shares: strict models (unknown keys are errors), paths resolved
against the YAML file, prompt templates given inline or as files, and the template check that
names unknown fields at load time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import jinja2
import jinja2.meta
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

EMBEDDED = "embedded"
SEED_VARIABLE = "seed"
SANDBOX_BACKENDS = ("auto", "bwrap", "docker", "process")
_TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2", ".txt", ".md")
_JINJA = jinja2.Environment()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
STORAGE_SCHEMES = ("s3", "gs")  # where run directories (outputs, and the runs mixed) may live


def local_path_problem(value: str) -> str | None:
    """Why a path cannot be used: a URI (s3://, gs://, ...) would become a local folder named
    after its scheme."""
    if match := _URI.match(value):
        where = ("object storage holds run directories (output.dir, a mixture's runs), not this"
                 if match.group(1).lower() in STORAGE_SCHEMES else f"{match.group(1)}:// is not a storage synthgen reads")
        return f"{value}: {where}; give a path on a local or shared filesystem"
    return None


def storage_problem(value: str) -> str | None:
    """Why a run directory cannot be used: a URI of a storage synthgen does not speak."""
    if (match := _URI.match(value)) and match.group(1).lower() not in STORAGE_SCHEMES:
        return (f"{value}: {match.group(1)}:// is not a storage synthgen can use; give a local path, "
                f"or one of {', '.join(s + '://BUCKET/PREFIX' for s in STORAGE_SCHEMES)}")
    return None


def resolve_storage(value: str, info: ValidationInfo) -> str:
    if problem := storage_problem(value):
        raise ValueError(problem)
    return value.rstrip("/") if _URI.match(value) else str(resolve_path(value, info))


def run_directory(value: str) -> str:
    """A run directory given on the command line: a storage URI as it is, a path made absolute."""
    return value.rstrip("/") if _URI.match(value) else str(Path(value).expanduser().resolve())


def resolve_path(value: str, info: ValidationInfo) -> Path:
    problem = local_path_problem(value)
    if problem:
        raise ValueError(problem)
    base = Path((info.context or {}).get("base_dir", "."))
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def template_text(value: str, info: ValidationInfo) -> str:
    """A template given inline, or the text of the template file it names."""
    looks_like_file = "\n" not in value and "{" not in value and value.endswith(_TEMPLATE_SUFFIXES)
    if not looks_like_file:
        return value
    path = resolve_path(value, info)
    if not path.is_file():
        raise ValueError(f"template file not found: {path}")
    return path.read_text(encoding="utf-8")


# A path in YAML, resolved against the YAML file's folder.
LocalPath = Annotated[str, AfterValidator(lambda value, info: str(resolve_path(value, info)))]
# A run directory: a local path as above, or an object-store URI (s3://, gs://).
StoragePath = Annotated[str, AfterValidator(resolve_storage)]
# A prompt template: inline Jinja2, or the text of the template file it names.
Template = Annotated[str, AfterValidator(template_text)]


def check_template(template: str | None, known: set[str], where: str) -> None:
    """A template may only name fields that exist where it is rendered."""
    if template is None:
        return
    try:
        parsed = _JINJA.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"{where}: template syntax error on its line {exc.lineno}: {exc.message}") from None
    unknown = jinja2.meta.find_undeclared_variables(parsed) - known
    if unknown:
        raise ValueError(
            f"{where}: template uses unknown field(s) {', '.join(sorted(unknown))}; "
            f"available here: {', '.join(sorted(known))}"
        )
