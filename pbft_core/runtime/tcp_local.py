"""A TCP cluster on this machine: `pbft node` subprocesses on free loopback ports.

Used by the process tests, by ``pbft run --transport tcp`` and by ``pbft bench smallbank
--transport tcp``. Each replica is a real
``python -m cli.main node`` process (exactly what an operator starts on a host), so crashes are
real: `LocalCluster.kill` is ``kill -9`` of that one process, `LocalCluster.start` again brings
it back on the same data directory, where it recovers from its write-ahead log.

Free ports are found by binding port 0 and closing the socket: another process could take a
port in between, which then shows up as a node that fails to start (a clear error, never a
silent hang: `wait_started` gives up after its timeout).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..clusterfile import Address, ClusterFile, keygen
from ..config import ClusterConfig


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_cluster_file(
    directory: Path,
    config: ClusterConfig,
    clients: list[str],
    *,
    seed: bytes | None = None,
    host: str = "127.0.0.1",
) -> ClusterFile:
    """Deal keys into `directory` for replicas on free ports of `host`."""
    ports = free_ports(config.n, host)
    addresses = {r: Address(host, p) for r, p in zip(config.replica_ids, ports, strict=True)}
    return keygen(directory, config, clients=clients, addresses=addresses, seed=seed, force=True)


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    log: IO[bytes]


@dataclass
class LocalCluster:
    """Start, crash, restart and stop the replicas of `cluster_path` as subprocesses."""

    cluster_path: Path
    data_dir: Path
    log_dir: Path
    node_args: dict[int, list[str]] = field(default_factory=dict)  # extra `pbft node` options
    verbose: bool = False
    processes: dict[int, _Process] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)

    def command(self, replica: int) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "cli.main",
            "node",
            "--id",
            str(replica),
            "--cluster",
            str(self.cluster_path),
            "--data-dir",
            str(self.data_dir),
            *self.node_args.get(replica, []),
        ]
        return [*command, "-v"] if self.verbose else command

    def start(self, replica: int) -> None:
        assert not self.alive(replica), f"n{replica} is already running"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts[replica] = self.starts.get(replica, 0) + 1
        log = (self.log_dir / f"n{replica}.log").open("ab")
        log.write(f"---- start {self.starts[replica]} ----\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        popen = subprocess.Popen(
            self.command(replica),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=Path(__file__).resolve().parents[2],  # the project root: `-m cli.main` resolves
        )
        self.processes[replica] = _Process(popen, log)

    def start_all(self, replicas: list[int]) -> None:
        for r in replicas:
            self.start(r)

    def alive(self, replica: int) -> bool:
        process = self.processes.get(replica)
        return process is not None and process.popen.poll() is None

    def pid(self, replica: int) -> int:
        return self.processes[replica].popen.pid

    def kill(self, replica: int) -> None:
        """``kill -9`` this replica's process (and only it)."""
        process = self.processes[replica]
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(10)
        process.log.close()

    def terminate(self, replica: int, timeout_s: float = 10.0, *, signal_sent: bool = False) -> int | None:
        """SIGTERM (clean shutdown: the node writes its final state); kill -9 if it hangs.
        Returns the exit code (None if it had to be killed)."""
        process = self.processes.get(replica)
        if process is None:
            return None
        code: int | None = process.popen.poll()
        if code is None:
            if not signal_sent:
                with contextlib.suppress(ProcessLookupError):
                    process.popen.send_signal(signal.SIGTERM)
            try:
                code = process.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill(replica)
                code = None
        process.log.close()
        return code

    def stop_all(self, timeout_s: float = 10.0) -> dict[int, int | None]:
        for process in self.processes.values():
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes = {}
        for r in list(self.processes):
            codes[r] = self.terminate(r, max(0.1, deadline - time.monotonic()), signal_sent=True)
        return codes

    def kill_all(self) -> None:
        """``kill -9`` every replica still running (the last resort when a clean stop is cut
        short, e.g. by a second Ctrl-C): no process outlives its cluster."""
        for r, process in self.processes.items():
            if process.popen.poll() is None:
                with contextlib.suppress(Exception):
                    self.kill(r)
            with contextlib.suppress(Exception):
                process.log.close()

    def stop_or_kill(self, timeout_s: float = 10.0) -> dict[int, int | None]:
        """`stop_all`; if that is interrupted (Ctrl-C while waiting), `kill_all` before the
        interruption goes on, so no replica is left behind."""
        try:
            return self.stop_all(timeout_s)
        except BaseException:
            self.kill_all()
            raise

    def wait_listening(self, replicas: list[int], addresses: dict[int, tuple[str, int]], timeout_s: float) -> str | None:
        """Wait until every replica of `replicas` accepts a TCP connection on its address; why
        not (a process that exited, with the end of its log, or the ones still silent at the
        deadline), or None. The probe connects and closes at once: the node counts one
        unfinished handshake for it."""
        deadline = time.monotonic() + timeout_s
        waiting = set(replicas)
        while waiting:
            dead = sorted(r for r in waiting if not self.alive(r))
            if dead:
                return "; ".join(f"n{r} exited during startup: {self.log_text(r).strip()[-400:]}" for r in dead)
            for r in sorted(waiting):
                with contextlib.suppress(OSError), socket.create_connection(addresses[r], timeout=0.2):
                    waiting.discard(r)
            if not waiting:
                return None
            if time.monotonic() > deadline:
                return f"{', '.join(f'n{r}' for r in sorted(waiting))} did not start listening within {timeout_s:g} s"
            time.sleep(0.05)
        return None

    def log_text(self, replica: int) -> str:
        path = self.log_dir / f"n{replica}.log"
        return path.read_text(errors="replace") if path.exists() else ""
