"""Prompt templates: Jinja2 with strict undefined, so a missing field is an error, not ''."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
_GLOBALS = dict(_ENV.globals)


class TemplateError(Exception):
    pass


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    try:
        template = _compiled(source)
        # `render` would merge the globals (a ChainMap, slow to iterate) into a new dict on every
        # call, a third of its cost; a shared context with the globals merged here gives the same.
        return _ENV.concat(template.root_render_func(template.new_context({**_GLOBALS, **context}, shared=True))).strip()
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # a filter or method call on seed data can raise anything
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None
