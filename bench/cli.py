"""The `bench` command: run, list, leaderboard. Flag names follow lm-eval's where they overlap."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from tabulate import tabulate

from bench import __version__
from bench.engine.collection import Item, select
from bench.engine.ray_executor import ItemFailed, RayOptions, require_ray
from bench.engine.runner import DEFAULT_OUTPUT_DIR, CellResult, RunOptions
from bench.engine.session import Session
from bench.engine.taskspec import load_task, task_files
from bench.errors import BenchError
from bench.model.loading import DEFAULT_MODEL, DTYPES, check_device
from bench.paths import ALLOW_POOR_SAE_ENV, DATA_ENV, data_dir
from bench.plugin.registry import plugins
from bench.report.labels import mean_se
from bench.report.publish import DEFAULT_PUBLISHED
from bench.sae.spec import ARCHITECTURES, TrainSpec


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with lens-bench's error format: one `bench: error:` line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bench: error: {message} (see `{self.prog} --help`).\n")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Score analytical lenses of language models.")
    parser.add_argument("--version", action="version", version=f"lens-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run tasks with a lens on a model and write result records")
    run.add_argument("--model", default=DEFAULT_MODEL, help=f"HF model id or local path (default: {DEFAULT_MODEL})")
    run.add_argument("--units", "--lens", required=True, help="lens name(s), comma-separated (see `bench list`)")
    run.add_argument("--task", "--tasks", required=True, help="task name(s) or YAML path(s), comma-separated")
    run.add_argument("--layers", type=_int_list, help="comma-separated layers; default: the task's")
    run.add_argument("--limit", type=_positive_int, help="use at most N items (facts) per task (N >= 1)")
    run.add_argument("--batch-size", "--batch_size", type=_positive_int, default=32, help="sequences per forward pass")
    run.add_argument("--device", default="cpu")
    run.add_argument(
        "--dtype", default="float32", choices=[*sorted(DTYPES), "auto"], help="auto: the architecture's native dtype"
    )
    run.add_argument("--seed", type=int, help="override the task's seed")
    run.add_argument(
        "--output-dir",
        "--output_path",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help=f"where records go (default: ./{DEFAULT_OUTPUT_DIR}, git-ignored)",
    )
    run.add_argument("--data-dir", type=Path, help="folder with pararel/, wikitext-2/, ... ($LENS_BENCH_DATA)")
    run.add_argument("--lens-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--sae", help="SAE lenses: a sae-lens directory or <release>/<sae_id> ({layer} is filled in)")
    run.add_argument("--force", action="store_true", help="recompute records that already exist")
    run.add_argument(
        "--allow-poor-sae", action="store_true", help="run an SAE that explains < 0.2 of its site's variance"
    )
    run.add_argument("-k", dest="keyword", help="select items by a pytest-style expression over their ids")
    run.add_argument(
        "--executor", default="local", choices=["local", "ray"], help="ray: items spread over Ray workers (extra)"
    )
    run.add_argument("--ray-address", help="join this Ray cluster ('auto', ray://host:10001); default: start one")
    run.add_argument("--workers", type=_positive_int, default=2, help="Ray workers, each loading the model once")
    run.add_argument("--num-cpus", type=float, default=1, help="CPUs each Ray worker reserves")
    run.add_argument("--num-gpus", type=float, default=0, help="GPUs each Ray worker reserves (e.g. 1, or 0.5)")
    run.add_argument("--collect-only", action="store_true", help="list the items that would run, and stop")

    sub.add_parser("list", help="show every registered lens and task and where it comes from")

    sae = sub.add_parser("sae", help="SAEs the harness trains itself").add_subparsers(dest="sae_command", required=True)
    train = sae.add_parser("train", help="train SAEs with sae-lens on a local corpus (resumable)")
    train.add_argument("--model", default=DEFAULT_MODEL)
    train.add_argument("--sites", default="resid_post,mlp_out,attn_out", help="comma-separated site kinds")
    train.add_argument("--layers", type=_int_list, default=[8, 16, 24])
    # TrainSpec fields: left unset (None), TrainSpec's own defaults apply
    d = TrainSpec()
    width_help = f"d_sae / d_in (default {d.width_multiple})"
    train.add_argument("--width", dest="width_multiple", metavar="WIDTH", type=int, help=width_help)
    train.add_argument("--architecture", choices=ARCHITECTURES, help=f"default {d.architecture}")
    train.add_argument("--k", type=int, help=f"TopK: active features per token (default {d.k})")
    train.add_argument("--l1", dest="l1_coefficient", metavar="L1", type=float, help=f"λ1 (default {d.l1_coefficient})")
    train.add_argument("--ne-coefficient", type=float, help=f"standard_ne: λ2 (default {d.ne_coefficient})")
    train.add_argument("--ne-warm-up-steps", type=int, help=f"standard_ne: steps before L_N ({d.ne_warm_up_steps})")
    train.add_argument("--epochs", type=float, help=f"passes over the training activations (default {d.epochs})")
    train.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    train.add_argument("--lr", type=float, help=f"default {d.lr}")
    train.add_argument("--seed", type=int, help=f"default {d.seed}")
    train.add_argument("--train-tokens", type=int, default=300_000)
    train.add_argument("--device", default="cpu")
    train.add_argument("--data-dir", type=Path)
    train.add_argument("--force", action="store_true", help="retrain SAEs that already exist")

    show = sub.add_parser("show", help="look at one unit").add_subparsers(dest="show_command", required=True)
    neuron = show.add_parser("neuron", help="an MLP neuron's dataset examples, clusters and dendrogram (PNG)")
    neuron.add_argument("--model", default=DEFAULT_MODEL)
    neuron.add_argument("--layer", type=int, required=True)
    neuron.add_argument("--index", type=int, required=True)
    neuron.add_argument("--threshold", type=float, default=0.5, help="cosine distance at which clusters are cut")
    neuron.add_argument("--output", type=Path, help="PNG path; default neuron_L<layer>_<index>.png")
    neuron.add_argument("--data-dir", type=Path)

    board = sub.add_parser("leaderboard", help="render result records as a leaderboard (markdown, html, csv, json)")
    board.add_argument("--results-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="records to show")
    board.add_argument(
        "--output", type=Path, help="default: <results-dir>/leaderboard/README.md (or leaderboard.<format>)"
    )
    board.add_argument("--format", default="md", choices=["md", "csv", "json", "html"])

    publish = sub.add_parser("publish", help="copy records, compacted, into the committed leaderboard folder")
    publish.add_argument("--results-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    publish.add_argument("--to", type=Path, default=DEFAULT_PUBLISHED, help=f"default: {DEFAULT_PUBLISHED}")
    return parser


def _cell_line(item: Item, cell: CellResult) -> str:
    metrics = cell.record["metrics"]
    key = item.task.type.headline_key(metrics) or next(iter(metrics), None)
    shown = f"{key} {mean_se(metrics[key])} (n={metrics[key]['n']})" if key else ""
    status = "CACHED" if cell.skipped else f"DONE {cell.record['provenance']['wall_time_s']:.0f}s"
    return f"{item.id} {status}  {shown}  -> {cell.path}"


def _results_table(cells: list[tuple[Item, CellResult]]) -> str:
    """One table per task: a row per item, a `mean ± se` column per metric; or, for a task type with
    its own run summary (privacy erasure's hundred metric columns), that summary per record."""
    tables = [item.task.type.run_summary(cell.record) for item, cell in cells if item.task.type.run_summary is not None]
    for task in dict.fromkeys(item.task.name for item, _ in cells if item.task.type.run_summary is None):
        rows = [(item, cell.record["metrics"]) for item, cell in cells if item.task.name == task]
        names = list(dict.fromkeys(name for _, metrics in rows for name in metrics))
        body = [
            [
                item.id,
                *(mean_se(m[n]) if n in m else "" for n in names),
                next(iter(m.values()))["n"],
            ]
            for item, m in rows
        ]
        tables.append(tabulate(body, headers=["item", *names, "n"], tablefmt="github"))
    return "\n\n".join(tables)


def _use_data_dir(explicit: Path | None) -> Path | None:
    """Resolve the data directory once and publish it, so plugins that read data (through
    bench.paths.data_dir) see the same folder as the task."""
    if explicit is not None and not explicit.is_dir():
        raise BenchError(
            f"--data-dir {explicit}: no such directory. It should hold pararel/, wikitext-2/ and ud-english-ewt/ "
            "(leave it out to use $LENS_BENCH_DATA, or ParaRel fetched from its public repository)."
        )
    resolved = data_dir(explicit)
    if resolved is not None:
        os.environ[DATA_ENV] = str(resolved)
    return resolved


def _cmd_run(args: argparse.Namespace) -> int:
    registry = plugins()
    tasks = [load_task(registry, name) for name in args.task.split(",")]
    lenses = args.units.split(",")
    for lens in lenses:
        registry.lenses.entry(lens)  # unknown lens: fail before loading the model
    check_device(args.device)
    if args.executor == "ray":
        require_ray()  # before the model loads
    if args.allow_poor_sae:  # read by the SAE lenses' quality gate, like the data dir
        os.environ[ALLOW_POOR_SAE_ENV] = "1"
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise BenchError(f"--output-dir {args.output_dir} is a file; records need a folder.")
    options = RunOptions(
        layers=args.layers,
        limit=args.limit,
        seed=args.seed,
        batch_size=args.batch_size,
        output_dir=args.output_dir,
        data_dir=_use_data_dir(args.data_dir),
        force=args.force,
        lens_options=dict(args.lens_option) | ({"sae": args.sae} if args.sae else {}),
    )
    session = Session(registry, options, args.model, args.device, args.dtype)
    collected = session.collect(tasks, lenses, args.layers)
    items = select(collected, args.keyword)
    if args.collect_only:
        for item in items:
            print(item.id)
        print(f"\n{len(items)} items collected")
        return 0
    if not items:
        raise BenchError(f"no item matches -k {args.keyword!r}; `bench run ... --collect-only` lists them.")
    print(f"collected {len(items)} items on {args.model}")
    start, started_at = time.perf_counter(), time.time()
    cells: list[tuple[Item, CellResult]] = []
    failed: list[tuple[Item, ItemFailed]] = []
    if args.executor == "ray":
        ray = RayOptions(args.ray_address, args.workers, args.num_cpus, args.num_gpus)
        results = session.run_on_ray(session.configs(items, collected), ray)
    else:
        results = session.run(items, collected)
    try:
        for item, cell in results:
            if isinstance(cell, ItemFailed):
                print(f"{item.id} FAILED  {cell.message}", file=sys.stderr, flush=True)
                failed.append((item, cell))
                continue
            print(_cell_line(item, cell), flush=True)
            cells.append((item, cell))
    except KeyboardInterrupt:
        print(f"\nbench: interrupted. {_kept(args.output_dir, started_at, len(cells))}", file=sys.stderr)
        return 130
    if cells:
        print("\n" + _results_table(cells))
    outcomes = session.check(cells)
    for outcome in outcomes:
        print(f"{outcome.status.upper():8} {outcome.expectation}  [{outcome.subject}: {outcome.detail}]")
    done = sum(not c.skipped for _, c in cells)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("passed", "failed", "skipped")}
    summary = f"{done} computed, {len(cells) - done} cached" + (f", {len(failed)} FAILED" if failed else "")
    if outcomes:
        summary += ", expectations: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"\n== {summary} in {time.perf_counter() - start:.1f}s -> {args.output_dir} ==")
    return 1 if counts["failed"] or failed else 0


def _kept(output_dir: Path, since: float, finished: int) -> str:
    """What an interrupted run leaves for the rerun to resume from, precisely."""
    from bench.paths import cache_dir

    def logs_written_since(folder: Path) -> list[tuple[Path, int]]:
        logs = folder.rglob("*.partial.jsonl") if folder.is_dir() else []
        return [(log, _lines(log)) for log in logs if log.stat().st_mtime >= since]

    kept = [f"{finished} finished record(s)"] if finished else []
    kept += [f"{n} finished item(s) in {log}" for log, n in logs_written_since(output_dir)]
    screen = cache_dir() / "known_facts"
    kept += [f"the known-fact screen's first {n} prompts in {log}" for log, n in logs_written_since(screen)]
    if not kept:
        return "Nothing of this run had finished yet; rerun the same command to start again."
    return "Kept: " + "; ".join(kept) + ". Rerun the same command to resume from there."


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _cmd_sae(args: argparse.Namespace) -> None:
    from bench.model.loading import load_model
    from bench.sae.training import train_saes

    data = _use_data_dir(args.data_dir)  # bad input fails before the model loads
    chosen = {f.name: getattr(args, f.name) for f in fields(TrainSpec) if getattr(args, f.name) is not None}
    spec = TrainSpec(**chosen)
    cards = train_saes(
        load_model(args.model, args.device),
        args.sites.split(","),
        args.layers,
        spec,
        data,
        args.device,
        args.force,
        args.train_tokens,
    )
    columns = {
        "l0": "L0",
        "mse": "MSE",
        "fraction_variance_explained": "var. explained",
        "dead_fraction": "dead",
        "ce_loss_recovered": "CE recovered",
    }
    rows = [
        [
            c["site"],
            c["training"]["architecture"],
            *(f"{c['heldout'].get(k, float('nan')):.3f}" for k in columns),  # cards before MSE lack it
            c["training"]["train_wall_time_s"],
        ]
        for c in cards
    ]
    print(
        tabulate(
            rows,
            headers=["site", "architecture", *columns.values(), "train s"],
            tablefmt="github",
        )
    )


def _section(title: str, rows: list[list[object]], headers: list[str]) -> None:
    print(f"{title}:")
    print(tabulate(rows, headers=headers, tablefmt="simple") + "\n")


def _cmd_list(_: argparse.Namespace) -> None:
    registry = plugins()
    lenses = [[e.name, e.obj.description, e.obj.default_site, e.source] for e in registry.lenses]
    _section("Lenses", lenses, ["name", "description", "default site", "from"])
    tasks = []
    for name, path in sorted(task_files(registry).items()):
        task = load_task(registry, str(path))
        source = registry.task_types.entry(task.type.name).source
        tasks.append([name, task.config.description, task.type.name, source, path])
    _section("Tasks", tasks, ["name", "description", "type", "from", "file"])
    judges = [[e.name, e.obj.description, e.obj.version, e.source] for e in registry.judges]
    _section("Judges (interpretability score)", judges, ["name", "description", "version", "from"])
    methods = [[e.name, e.obj.description, e.obj.attribution, e.source] for e in registry.erasure_methods]
    _section("Erasure methods (privacy erasure)", methods, ["name", "description", "attribution", "from"])


def _cmd_leaderboard(args: argparse.Namespace) -> None:
    from bench.engine.records import load_records
    from bench.report.leaderboard import write_leaderboard

    name = "README.md" if args.format == "md" else f"leaderboard.{args.format}"
    out = args.output or args.results_dir / "leaderboard" / name
    argv = ["bench", "leaderboard", "--results-dir", str(args.results_dir), "--output", str(out)]
    command = shlex.join(argv + (["--format", args.format] if args.format != "md" else []))
    records = load_records(args.results_dir, plugins().task_types.by_name())
    print(f"wrote {write_leaderboard(records, out, command, args.format, plugins().task_types.by_name())}")


def _cmd_publish(args: argparse.Namespace) -> None:
    from bench.report.publish import publish

    written = publish(args.results_dir, args.to, plugins().task_types.by_name())
    print(f"published {len(written)} records into {args.to}")


def _cmd_show(args: argparse.Namespace) -> None:
    from bench.report.show import show_neuron

    out = args.output or Path(f"neuron_L{args.layer}_{args.index}.png")
    path, summary = show_neuron(args.model, args.layer, args.index, out, _use_data_dir(args.data_dir), args.threshold)
    print(summary)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "list": _cmd_list,
        "leaderboard": _cmd_leaderboard,
        "publish": _cmd_publish,
        "sae": _cmd_sae,
        "show": _cmd_show,
    }
    handler = handlers[args.command]
    try:
        code = handler(args)
    except BenchError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench: interrupted; finished steps are kept (records, SAE checkpoints, caches).", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
