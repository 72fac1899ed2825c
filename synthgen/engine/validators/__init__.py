"""Validator kinds, one module each: its spec (a pydantic model with `kind`), the check it builds,
and optional per-run preparation and run-wide shared state, declared as `KIND = ValidatorKind(...)`.
The registry finds every module here; `base` holds what they share."""
