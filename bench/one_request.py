"""The benchmarks' workflow: each seed's text asked once, the answer kept (one request a seed)."""

from __future__ import annotations

from pathlib import Path


def one_request_workflow(path: Path, seeds: Path, url: str, *, max_in_flight: int, max_tokens: int, shard_rows: int,
                         workers: int | None = None) -> Path:
    runtime = f"runtime: {{workers: {workers}}}\n" if workers else ""
    path.write_text(f"""name: {path.stem}
seeds: {{path: {seeds}, kind: text, min_chars: 10}}
teacher: {{base_url: "{url}", model: fake, max_in_flight: {max_in_flight}, max_tokens: {max_tokens}, timeout_s: 60}}
steps:
  - id: answer
    prompt: "{{{{ seed.text }}}}"
messages:
  - {{role: user, content: "{{{{ seed.text }}}}"}}
  - {{role: assistant, content: "{{{{ answer }}}}"}}
output: {{shard_rows: {shard_rows}}}
{runtime}""")
    return path
