"""`pbft run`'s loop: play the selected sets one after another and present them.

For every set: a rich progress line while the cluster runs (on a terminal), protocol events as
they happen with ``-v``, then the set's tables, its row in the run index, the JSON report
(rewritten after every set, so an interrupted run still leaves one) and, on a terminal, the
interactive prompt. Returns the process exit code (0, or 1 if any set had honest live replicas
disagreeing or a worker failure).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
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

    def as_json(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "fast_path": self.fast_path,
            "checkpoint_interval": self.checkpoint_interval,
            "batch_size": self.batch_size,
            "stall_timeout_s": self.stall_timeout_s,
            "seed": self.seed,
        }


def _event_printer(console: Console, set_number: int) -> Any:
    def on_event(replica: int, t_ms: float, kind: str, detail: dict[str, Any]) -> None:
        text = event_text(kind, detail, markup=True)
        if text is not None:
            console.print(f"[dim]set {set_number} {t_ms:8.1f} ms[/dim] n{replica} {text}")

    return on_event


def _describe_set(s: ScenarioSet) -> str:
    live = ",".join(f"n{r}" for r in sorted(s.live)) or "none"
    text = f"Set {s.number}: {len(s.transactions)} transactions · live {live}"
    if s.byzantine:
        byz = ",".join(f"n{r}" for r in sorted(s.byzantine))
        text += f" · byzantine {byz} [{'; '.join(str(a) for a in s.attacks) or 'no attack'}]"
    return text


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
    )
    index = RunIndex.create(
        options.data_dir, scenario=str(options.scenario), options=options.as_json()
    )
    info = index.info()
    console.print(f"[dim]run {index.run_id} · data in {index.dir}[/dim]")
    reports: list[dict[str, Any]] = []
    exit_code = 0
    try:
        for position, scenario_set in enumerate(sets):
            console.print(f"[bold]{_describe_set(scenario_set)}[/bold]")
            set_options = SetOptions(
                config=config,
                stall_timeout_s=options.stall_timeout_s,
                seed=set_seed(options.seed, scenario_set.number),
                verbose=options.verbose,
            )
            on_event = _event_printer(console, scenario_set.number) if options.verbose else None
            started_at_s = time.time()
            result = _play_set(console, play_set, scenario_set, set_options, index, on_event)
            report = build_set_report(scenario_set, result, config)
            reports.append(report)
            index.record_set(report, started_at=started_at_s)
            if options.json_path is not None:
                write_json(options.json_path, run_report(info, reports))
            render.print_set_summary(console, report)
            if report["ended_by"] == "failure" or not report["agreement"]["ok"]:
                exit_code = 1
            if options.interactive:
                last = position == len(sets) - 1
                if not session.interact(console, result.set_dir, report, last=last) or last:
                    break
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        exit_code = 130
    finally:
        index.set_info(finished_at=time.time(), exit_code=exit_code)
        index.close()
    if options.json_path is not None and reports:
        console.print(f"[dim]JSON report: {options.json_path}[/dim]")
    total = sum(r["duration_s"] for r in reports)
    console.print(
        f"[dim]{len(reports)} set(s) in {total:.1f} s · inspect with `pbft inspect log N --run {index.run_id}`[/dim]"
    )
    return exit_code
