"""The config layer: pydantic models of everything a user writes in YAML (workflows, mixture
recipes, curation), and the YAML source that turns their mistakes into `file:line` errors.
Pure data: no Ray, HTTP, Arrow or DuckDB; importable in milliseconds (a test guards it)."""
