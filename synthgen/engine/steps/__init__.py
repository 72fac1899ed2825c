"""Step kinds, one module each: its spec (the YAML keys, a pydantic model) and the async function
that does the step to a sample, declared together as `KIND = StepKind(...)`. The registry finds
every module here; `base` holds what the kinds share."""
