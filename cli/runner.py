"""`pbft run`'s loop: play the selected sets one after another and present them.

For every set: a rich progress line while the cluster runs (on a terminal), protocol events as
they happen with ``-v``, then the set's tables, its row in the run index, the JSON report
(rewritten after every set, so an interrupted run still leaves one) and, on a terminal, the
interactive prompt. Returns the process exit code (0, or 1 if any set had honest live replicas
disagreeing or a worker failure).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pbft_core.config import ClusterConfig
from pbft_core.report import build_set_report, run_report, write_json
from pbft_core.runtime.pipes import run_set
from pbft_core.runtime.set_run import EventCallback, SetOptions, SetResult, set_seed
from pbft_core.runtime.summary import event_text
from pbft_core.scenario import ScenarioSet
from pbft_core.storage import RunIndex

from . import render, session
from .common import DEFAULT_DATA_DIR, is_stdout, write_output
from .views import Target

# How long (of set time) `-v` holds an event back: events come from seven processes, and one that
# arrives late still prints in time order if it is at most this late.
EVENT_HOLD_MS = 250.0


@dataclass(frozen=True)
class RunOptions:
    scenario: Path
    data_dir: Path
    json_path: Path | None
    interactive: bool
    fast_path: bool
    checkpoint_interval: int
    batch_size: int
    stall_timeout_s: float
    seed: int | None
    verbose: bool
    transport: str = "pipes"  # or "tcp": `pbft node` processes (pbft_core.runtime.tcp.driver)
    certificates: str = "bls"  # or "ed25519" (`ClusterConfig.certificates`)

    def as_json(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "certificates": self.certificates,
            "fast_path": self.fast_path,
            "checkpoint_interval": self.checkpoint_interval,
            "batch_size": self.batch_size,
            "stall_timeout_s": self.stall_timeout_s,
            "seed": self.seed,
        }


class EventPrinter:
    """``-v``: protocol events in time order. Each replica process reports its own events, so
    they reach the driver interleaved; an event is held until it is `EVENT_HOLD_MS` older than
    the newest one seen, and `flush` prints the rest when the set ends."""

    def __init__(self, console: Console, set_number: int) -> None:
        self.console = console
        self.set_number = set_number
        self.pending: list[tuple[float, int, str]] = []
        self.newest_ms = 0.0

    def __call__(self, replica: int, t_ms: float, kind: str, detail: dict[str, Any]) -> None:
        text = event_text(kind, detail, markup=True)
        if text is None:
            return
        self.pending.append((t_ms, replica, text))
        self.newest_ms = max(self.newest_ms, t_ms)
        self._print(lambda t: t <= self.newest_ms - EVENT_HOLD_MS)

    def flush(self) -> None:
        self._print(lambda _t: True)

    def _print(self, due: Callable[[float], bool]) -> None:
        self.pending.sort(key=lambda e: (e[0], e[1]))
        while self.pending and due(self.pending[0][0]):
            t_ms, replica, text = self.pending.pop(0)
            self.console.print(f"[dim]set {self.set_number} {t_ms:8.1f} ms[/dim] n{replica} {text}")


def _describe_set(s: ScenarioSet) -> str:
    """The set's header line (rich markup; the attacks are escaped, ``[time; dark(n6)]`` is text)."""
    live = ",".join(f"n{r}" for r in sorted(s.live)) or "none"
    text = f"Set {s.number}: {len(s.transactions)} transactions · live {live}"
    if s.byzantine:
        byz = ",".join(f"n{r}" for r in sorted(s.byzantine))
        attacks = "; ".join(str(a) for a in s.attacks) or "no attack"
        text += f" · byzantine {byz} ({escape(attacks)})"
    return text


def inspect_hint(options: RunOptions, run_id: str) -> str:
    """The command that inspects this run, as it must be typed (with a non-default data dir)."""
    words = ["pbft", "inspect", "log", "N", "--run", run_id]
    if options.data_dir != DEFAULT_DATA_DIR:
        words += ["--data-dir", str(options.data_dir)]
    return " ".join(shlex.quote(w) if w != "N" else w for w in words)


def _play_set(
    console: Console,
    play_set: Callable[..., SetResult],
    scenario_set: ScenarioSet,
    set_options: SetOptions,
    index: RunIndex,
    on_event: EventCallback | None,
) -> SetResult:
    """Play one set, with a progress line while it runs (on a terminal)."""
    run_meta = {"run_id": index.run_id}
    if not console.is_terminal:
        return play_set(scenario_set, set_options, index.dir, run_meta=run_meta, on_event=on_event)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=len(scenario_set.transactions))

        def on_progress(done: int, total: int, phase: str) -> None:
            progress.update(task, completed=done, description=phase)

        return play_set(
            scenario_set, set_options, index.dir, run_meta=run_meta, on_event=on_event, on_progress=on_progress
        )


def play(console: Console, sets: list[ScenarioSet], options: RunOptions) -> int:
    play_set = run_set
    if options.transport == "tcp":
        from pbft_core.runtime.tcp.driver import run_set_tcp as play_set
    config = ClusterConfig(
        checkpoint_interval=options.checkpoint_interval,
        batch_size_max=options.batch_size,
        fast_path=options.fast_path,
        certificates=options.certificates,
    )
    index = RunIndex.create(
        options.data_dir, scenario=str(options.scenario), options=options.as_json()
    )
    info = index.info()
    reports: list[dict[str, Any]] = []
    exit_code = 0
    ended = "finished"
    json_to_stdout = is_stdout(options.json_path)
    try:
        try:
            console.print(f"[dim]run {index.run_id} · data in {escape(str(index.dir))}[/dim]")
            exit_code = _play_sets(console, play_set, sets, options, config, index, info, reports)
        except KeyboardInterrupt:
            exit_code, ended = 130, "interrupted"
            console.print(f"[red]interrupted[/red] · {len(reports)} set(s) finished before Ctrl-C")
        if options.json_path is not None and reports:
            if json_to_stdout:
                write_output(options.json_path, json.dumps(run_report(info, reports), indent=2) + "\n")
            else:
                console.print(f"[dim]JSON report: {escape(str(options.json_path))}[/dim]")
        total = sum(r["duration_s"] for r in reports)
        console.print(
            f"[dim]{len(reports)} set(s) in {total:.1f} s · inspect with "
            f"`{escape(inspect_hint(options, index.run_id))}`[/dim]"
        )
        console.file.flush()  # a closed output must show up here, not at interpreter exit
    except BrokenPipeError:
        # The reader of our output is gone (`pbft run ... | head`): stop quietly, and let the
        # run index say so rather than claim a clean exit.
        from .main import silence_stdout

        silence_stdout()
        exit_code, ended = 141, "output closed"
    except BaseException:
        _finish(index, 1, "failed")
        raise
    return _finish(index, exit_code, ended)


def _play_sets(
    console: Console,
    play_set: Callable[..., SetResult],
    sets: list[ScenarioSet],
    options: RunOptions,
    config: ClusterConfig,
    index: RunIndex,
    info: dict[str, Any],
    reports: list[dict[str, Any]],
) -> int:
    """Play the sets in order, presenting each; appends each set's report to `reports` (the
    caller reports what finished even when this is interrupted). Returns the exit code."""
    exit_code = 0
    for position, scenario_set in enumerate(sets):
        console.print(f"[bold]{_describe_set(scenario_set)}[/bold]")
        console.file.flush()
        set_options = SetOptions(
            config=config,
            stall_timeout_s=options.stall_timeout_s,
            seed=set_seed(options.seed, scenario_set.number),
            verbose=options.verbose,
        )
        printer = EventPrinter(console, scenario_set.number) if options.verbose else None
        started_at_s = time.time()
        try:
            result = _play_set(console, play_set, scenario_set, set_options, index, printer)
        finally:
            if printer is not None:
                printer.flush()
        report = build_set_report(scenario_set, result, config)
        reports.append(report)
        index.record_set(report, started_at=started_at_s)
        if options.json_path is not None and not is_stdout(options.json_path):
            write_json(options.json_path, run_report(info, reports))
        render.print_set_summary(console, report)
        console.file.flush()
        if report["ended_by"] == "failure" or not report["agreement"]["ok"]:
            exit_code = 1
        if options.interactive:
            last = position == len(sets) - 1
            target = Target(Path(result.set_dir), "run", index.run_id, report["set"], report)
            history = options.data_dir / "prompt_history"
            if not session.interact(console, target, report["set"], last=last, history=history) or last:
                break
    return exit_code


def _finish(index: RunIndex, exit_code: int, ended: str) -> int:
    """Record how the run ended in its index (`pbft runs` shows it) and close the index."""
    index.set_info(finished_at=time.time(), exit_code=exit_code, ended=ended)
    index.close()
    return exit_code
