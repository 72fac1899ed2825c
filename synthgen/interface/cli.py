"""The `synthgen` command. User mistakes print one line and exit 1; an aborted or partial run
exits 2 with a line saying how to resume; anything else is a bug (exit 3, with traceback)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path

from synthgen.config.base import SANDBOX_BACKENDS, local_path_problem, storage_problem
from synthgen.config.errors import UserError

EXIT_OK, EXIT_USER, EXIT_PARTIAL, EXIT_INTERNAL = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthgen", description="Synthetic training data from seeds and a teacher LLM.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run or resume a workflow (rerun = resume)")
    run.add_argument("workflow", help="workflow YAML file")
    run.add_argument("--out", help="output directory (default: the YAML's output.dir, else out/NAME)")
    run.add_argument("--seeds", help="seed file or folder instead of the YAML's seeds.path")
    run.add_argument("--teacher-url", help="OpenAI-compatible base URL for every teacher ('embedded' for the local one)")
    run.add_argument("--model", help="model name for every teacher")
    run.add_argument("--limit", type=int, help="use at most N seeds")
    run.add_argument("--address", help="join the Ray cluster at this address instead of starting a local instance")
    run.add_argument("--dry-run", action="store_true",
                     help="print the requests, tokens and cost the run will take, without calling any teacher "
                          "(learned from the seeds already committed in --out, else upper bounds)")

    check = commands.add_parser("check", help="validate a workflow without running it")
    check.add_argument("workflow")

    demo = commands.add_parser("demo", help="run the built-in workflows on shipped seeds with the embedded teacher")
    demo.add_argument("--out", default="out/demo")

    inspect = commands.add_parser("inspect", help="summarize a run's shards (or query them with --sql)")
    inspect.add_argument("dir")
    inspect.add_argument("--sql", help="a DuckDB query over the tables data and rejects")

    sandbox = commands.add_parser("sandbox", help="run untrusted code in the sandbox")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    execute = sandbox_commands.add_parser("exec", help="run one Python file in the sandbox; prints the result as JSON")
    execute.add_argument("file")
    execute.add_argument("--tests", help="a Python file of tests to run against FILE (test_* functions, TestCase or asserts)")
    execute.add_argument("--backend", default="auto", choices=SANDBOX_BACKENDS)
    execute.add_argument("--timeout", type=float, default=10.0, help="wall time limit in seconds")
    execute.add_argument("--memory", type=int, default=512, help="memory limit in MB")

    decontaminate = commands.add_parser("decontaminate", help="flag rows of Parquet/JSONL that leak benchmark items")
    decontaminate.add_argument("inputs", nargs="+", metavar="IN", help="Parquet/JSONL files or folders")
    decontaminate.add_argument("--benchmarks", default="humaneval", help="comma-separated: humaneval, FILE.jsonl|parquet, hf:NAME")
    decontaminate.add_argument("--field", action="append", dest="fields", help="a field to check (repeatable; default: every text field)")
    decontaminate.add_argument("--out", required=True, help="output folder: clean.parquet, flagged.parquet, summary.json")
    decontaminate.add_argument("--ngram", type=int, default=13)
    decontaminate.add_argument("--jaccard", type=float, default=0.8)

    seeds = commands.add_parser("seeds", help="seed curation")
    seeds_commands = seeds.add_subparsers(dest="seeds_command", required=True)
    curate = seeds_commands.add_parser("curate", help="filter, dedup, score and tag raw sources into a seeds Parquet")
    curate.add_argument("sources", nargs="+", metavar="SOURCE", help="folders or files: .py, .md/.txt/.html, .jsonl, .parquet")
    curate.add_argument("--out", required=True, help="the seeds Parquet (rejects and summary are written beside it)")
    curate.add_argument("--config", help="CURATE.yaml (filters, judge, classifier, topics, caps)")

    mix = commands.add_parser("mix", help="build a weighted, deterministic training mixture from runs and files")
    mix.add_argument("recipe", help="mixture recipe YAML")
    mix.add_argument("--out", required=True, help="output folder for the shards and manifest.json")

    report = commands.add_parser("report", help="write the HTML report (and SVG plots) of a run")
    report.add_argument("dir", help="a run's output directory")

    ray_command = commands.add_parser("ray", help="a local Ray instance kept running, which every run on this machine joins")
    ray_commands = ray_command.add_subparsers(dest="ray_command", required=True)
    ray_commands.add_parser("start", help="start it (runs then start in a fraction of a second)")
    ray_commands.add_parser("stop", help="stop it (runs start their own instance again)")

    teacher = commands.add_parser("teacher", help="the embedded teacher")
    teacher_commands = teacher.add_subparsers(dest="teacher_command", required=True)
    serve = teacher_commands.add_parser("serve", help="serve the embedded teacher (OpenAI-compatible) until stopped")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--parallel", type=int, default=4, help="requests decoded at once")
    serve.add_argument("--ready-file", help=argparse.SUPPRESS)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("synthgen").setLevel(logging.DEBUG if verbose else logging.INFO)


def _run(args: argparse.Namespace) -> int:
    from synthgen.engine.registry import load_workflow
    from synthgen.interface.api import run_workflow, seeds_of
    from synthgen.interface.inspection import print_run_report

    workflow = load_workflow(
        args.workflow, seeds=args.seeds, out=args.out, teacher_url=args.teacher_url, model=args.model, limit=args.limit
    )
    if args.dry_run:
        from synthgen.pipelines.estimate import estimate, format_estimate

        print(format_estimate(estimate(workflow, seeds_of(workflow).seeds), workflow))
        return EXIT_OK
    report = run_workflow(workflow, address=args.address)
    print_run_report(workflow.name, report)
    return EXIT_OK if report.status == "done" else EXIT_PARTIAL


def _check(args: argparse.Namespace) -> int:
    from synthgen.engine.registry import load_workflow

    workflow = load_workflow(args.workflow)
    if not Path(workflow.seeds.path).exists():
        raise UserError(f"{args.workflow}: seed path not found: {workflow.seeds.path}")
    steps = " -> ".join(step.id for step in workflow.steps)
    print(f"ok: {workflow.name} (hash {workflow.workflow_hash}); steps {steps}; "
          f"teachers {', '.join(workflow.teachers)}; seeds {workflow.seeds.path}")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from synthgen.interface.demo import demo

    return EXIT_OK if demo(Path(args.out).resolve()) else EXIT_PARTIAL


def _inspect(args: argparse.Namespace) -> int:
    from synthgen.interface.inspection import format_summary
    from synthgen.storage.query import connect, query, summarize

    con = connect(args.dir)
    print(query(con, args.sql) if args.sql else format_summary(summarize(con)))
    return EXIT_OK


def _ray(args: argparse.Namespace) -> int:
    from synthgen.runtime.cluster import start_kept_instance, stop_kept_instance

    if args.ray_command == "start":
        print(f"local Ray instance running at {start_kept_instance()}: every synthgen run here joins it; "
              "`synthgen ray stop` ends it")
    else:
        stopped = stop_kept_instance()
        print(f"stopped the kept local Ray instance ({stopped} processes)" if stopped else "no kept local Ray instance was running")
    return EXIT_OK


def _teacher(args: argparse.Namespace) -> int:
    from synthgen.engine.embedded_teacher import serve

    serve(port=args.port, host=args.host, parallel=args.parallel, ready_file=args.ready_file)
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    from synthgen.engine.sandbox import Job, Limits, SandboxUnavailable, open_sandbox

    files = {"code": Path(args.file)} | ({"tests": Path(args.tests)} if args.tests else {})
    for what, path in files.items():
        if not path.is_file():
            raise UserError(f"{path}: no such file ({what} to run in the sandbox)")
    code = files["code"].read_text(encoding="utf-8", errors="replace")
    limits = Limits(wall_s=args.timeout, cpu_s=max(1, int(args.timeout)), memory_mb=args.memory)
    job = Job.with_tests(code, files["tests"].read_text(), limits) if args.tests else Job.script(code, limits)
    try:
        with open_sandbox(args.backend, slots=1, ceiling=limits) as sandbox:
            result = sandbox.run(job)
    except SandboxUnavailable as exc:
        print(f"error: sandbox unavailable: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    print(result.model_dump_json(indent=2))
    return EXIT_OK


def _decontaminate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from synthgen.config.decontamination import Decontamination
    from synthgen.engine.references import Params
    from synthgen.pipelines.decontaminate_files import decontaminate_files

    try:  # the same bounds as a workflow's decontaminate block
        Decontamination(ngram=args.ngram, jaccard=args.jaccard)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UserError(f"--{error['loc'][0]}: {error['msg']} (got {error['input']})") from None
    summary = decontaminate_files(args.inputs, [b for b in args.benchmarks.split(",") if b],
                                  args.fields, Path(args.out), Params(ngram=args.ngram, jaccard=args.jaccard))
    print(f"{summary['rows']} rows: {summary['clean']} clean, {summary['flagged']} flagged "
          f"({', '.join(f'{k}: {v}' for k, v in summary['hits'].items()) or 'no hits'}) in {summary['elapsed_s']} s")
    print(f"outputs: {', '.join(summary['outputs'].values())}; summary: {Path(args.out) / 'summary.json'}")
    return EXIT_OK


def _mix(args: argparse.Namespace) -> int:
    from synthgen.pipelines.mix import build_mixture
    from synthgen.config.recipe import load_recipe

    manifest = build_mixture(load_recipe(args.recipe), Path(args.out))
    print(f"mixture {manifest['recipe']['name']}: {manifest['rows']} rows, {manifest['tokens']} tokens "
          f"({manifest['tokenizer']}), {len(manifest['shards'])} shards in {args.out}")
    print("source            target   tokens   rows   (share achieved)")
    for source in manifest["sources"]:
        print(f"  {source['name']:<15} {source['target_share']:>6.1%}  {source['achieved_share_tokens']:>6.1%}  "
              f"{source['achieved_share_rows']:>6.1%}   {source['tokens_taken']} tokens, {source['rows_taken']} rows "
              f"({source['unique_rows']} unique, each at most {source['max_repetition']}x)")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from synthgen.interface.report import write_report

    page = write_report(args.dir)
    print(f"report: {page}")
    return EXIT_OK


def _seeds(args: argparse.Namespace) -> int:
    from synthgen.config.curate import load_curate_config
    from synthgen.pipelines.curate.pipeline import curate

    summary = curate([Path(p) for p in args.sources], load_curate_config(args.config), Path(args.out))
    print(f"{summary['candidates']} candidates: {summary['kept']} kept, {summary['rejected']} rejected"
          + (f" ({summary['unreadable']} unreadable rows or files besides)" if summary["unreadable"] else ""))
    for reason, count in summary["rejected_by_reason"].items():
        print(f"  {count:>6}  {reason}")
    print("topic coverage of the kept seeds:")
    for topic, count in summary["coverage"].items():
        print(f"  {topic:<18}{count:>6}  {'#' * min(count, 60)}")
    print(f"seeds: {summary['outputs']['seeds']}; rejects: {summary['outputs']['rejects']}")
    return EXIT_OK


COMMANDS = {"decontaminate": _decontaminate, "seeds": _seeds, "mix": _mix, "report": _report, "ray": _ray, "run": _run, "check": _check, "demo": _demo, "inspect": _inspect, "teacher": _teacher, "sandbox": _sandbox}


# Arguments that name URLs, not paths; and those that name run directories, which may be on
# object storage.
_URL_ARGUMENTS = {"teacher_url", "address"}
_RUN_DIRECTORIES = {("run", "out"), ("inspect", "dir"), ("report", "dir"), ("decontaminate", "inputs")}


def _check_paths(args: argparse.Namespace) -> None:
    for name, value in vars(args).items():
        if name in _URL_ARGUMENTS or name == "command":
            continue
        check = storage_problem if (args.command, name) in _RUN_DIRECTORIES else local_path_problem
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and (problem := check(item)):
                raise UserError(problem)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        _check_paths(args)
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_PARTIAL
    except Exception:
        traceback.print_exc()
        print("internal error: this is a synthgen bug; please report it with the traceback above", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    """The `synthgen` command: main, then out without the interpreter's teardown (finalizing
    Ray, Arrow and the other loaded modules took ~0.5 s of every quick run). Everything of
    ours is closed by then; what is buffered is flushed here."""
    try:
        code = main()
    except BrokenPipeError:  # `synthgen inspect … | head`
        code = EXIT_OK
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else EXIT_USER
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
