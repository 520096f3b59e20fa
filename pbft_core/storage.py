"""SQLite persistence: one database per replica per set, and one index per run.

Theory of operation
-------------------
A shell (pipes worker, TCP node, or the driver for a disconnected replica) owns one
`ReplicaStore` per replica. The `NodeHost` feeds it every message the replica received or sent
and every event of every `Ready`; the shell calls `commit` once per loop iteration (batched), and
always *before* it sends the messages of that iteration, so what a replica voted is on disk
before anyone can see the vote. WAL mode with ``synchronous=NORMAL``: a committed transaction
survives a process crash (the case the runtime cares about), not necessarily a power cut.

This is the inspection record (what `pbft inspect` reads), not the crash-recovery log: a node
that must survive ``kill -9`` keeps its durable events in `durable.DurableLog` as well.

Nothing here is ever unpickled: protocol messages are stored as the wire codec's bytes and read
back with the strict `messages.decode`; everything else is plain columns or JSON.

Layout on disk (``<data-dir>`` defaults to ``./.pbft``, the CLI's ``cli.common.DEFAULT_DATA_DIR``)::

    <data-dir>/runs/<run-id>/run.sqlite            the run index (RunIndex)
    <data-dir>/runs/<run-id>/set-<k>/n<i>.sqlite   replica n<i> during set k (ReplicaStore)

Run ids are ``YYYYmmdd-HHMMSS-<4 hex>``: sorting them sorts runs by start time, so the latest
run is the greatest id.

Replica database schema (``n<i>.sqlite``)
-----------------------------------------
``meta(key PK, value)``
    run_id, set, replica (``n3``), honest (0/1), live (0/1), attacks (JSON list of strings),
    live_set / byzantine_set (JSON lists of replica names), config (JSON), schema_version.
``messages(id PK, t_ms, direction, peer, type, view, seq, digest, size, summary, note)``
    Every message received (``in``: ``peer`` is the sender link, a replica name or a client)
    and sent (``out``: ``peer`` lists the destinations, e.g. ``n2,n3,n4``; one row per message
    even when broadcast, and one row for the replies of a batch, which share one signed root:
    ``peer`` lists their clients, ``size`` is their total). ``view``/``seq`` are NULL for
    messages without them (a VIEW-CHANGE's view is its new view); ``digest`` is the first 8
    bytes of the batch digest, hex. ``note`` says why an input never reached the protocol
    (undecodable, wrong channel).
``status_history(id PK, t_ms, seq, view, status)`` / ``slot_status(seq PK, view, status, digest, t_ms)``
    Every PP/P/C/E transition, and the latest status per sequence number (X = absent).
``executed(seq PK, view, t_ms, requests, results, state_digest)``
    The batch executed at seq: ``requests`` is a JSON list of
    ``{"client", "timestamp", "kind", "args"}`` (``[]`` is a no-op), ``results`` the JSON list of
    results (``null``: a retransmission answered from the reply table, not executed again).
``checkpoints(seq PK, state_digest, t_ms, how)``
    Stable checkpoints (``how`` = ``stable``) and certified snapshots installed from a peer
    (``transferred``).
``balances(kind, seq, account, amount)``, PK (kind, seq, account)
    ``kind`` = ``final`` (seq = last executed when the replica stopped). Databases written
    before ``snapshots`` existed also hold ``checkpoint`` rows here.
``snapshots(seq PK, data)``
    The snapshot at each stable checkpoint or installed by state transfer, exactly the bytes
    whose digest the checkpoint certificate signs (`Bank.snapshot`: balances and the client reply
    table, msgpack). Decoded only when inspected, so a SmallBank state of thousands of accounts
    costs one blob per checkpoint, not a row per account.
``view_changes(id PK, t_ms, direction, new_view, replica, checkpoint_seq, prepared, preprepared)``
    Every VIEW-CHANGE sent or received: ``prepared`` / ``preprepared`` are JSON lists of the
    sequence numbers it carries proofs / pre-prepares for.
``new_views(id PK, t_ms, view, leader, view_changes, proposals)``
    Every NEW-VIEW this replica installed. ``view_changes`` = JSON list of
    ``{"replica", "checkpoint_seq", "prepared": [seq, ...]}`` (the set V); ``proposals`` = JSON
    list of ``{"seq", "requests": [...]}`` (the set O; ``requests: []`` is a no-op).
``events(id PK, t_ms, kind, detail)``
    Protocol events worth reading (view change started, new view installed, checkpoint stable,
    state transferred, drops) as JSON detail.
``metrics(name PK, value)`` / ``final(key PK, value)``
    The replica's counters and its final view / view_active / last_executed / stable_seq,
    written when it stops.

Run index schema (``run.sqlite``)
---------------------------------
``run(key PK, value)``: id, scenario, started_at, finished_at, options (JSON), exit_code.
``sets(number PK, started_at, duration_s, ended_by, agreement, failure, report)``: one row per
set played; ``report`` is the set's JSON report object (see ``docs/json-report.md``).
``transactions(set_number, idx, line, client, kind, args, outcome, result, latency_ms)``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bank import Bank
from .config import replica_name
from .messages import (
    CatchUp,
    Checkpoint,
    Fetch,
    Message,
    NewView,
    PrePrepare,
    Reply,
    Request,
    Status,
    ViewChange,
    batch_digest,
)
from .ready import (
    CheckpointStable,
    Dropped,
    Event,
    Executed,
    NewViewInstalled,
    StateTransferred,
    StatusChanged,
    ViewChangeStarted,
)
from .runtime.summary import event_summary
from .smallbank import operation_text

SCHEMA_VERSION = 1
SUMMARY_CHARS_MAX = 200
SHOWN_MAX = 4  # requests of a batch, replies of a batch: how many a log summary lists
DIGEST_HEX_CHARS = 16

_REPLICA_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, t_ms REAL, direction TEXT, peer TEXT, type TEXT,
    view INTEGER, seq INTEGER, digest TEXT, size INTEGER, summary TEXT, note TEXT);
CREATE TABLE IF NOT EXISTS status_history (
    id INTEGER PRIMARY KEY, t_ms REAL, seq INTEGER, view INTEGER, status TEXT);
CREATE TABLE IF NOT EXISTS slot_status (
    seq INTEGER PRIMARY KEY, view INTEGER, status TEXT, digest TEXT, t_ms REAL);
CREATE TABLE IF NOT EXISTS executed (
    seq INTEGER PRIMARY KEY, view INTEGER, t_ms REAL, requests TEXT, results TEXT,
    state_digest TEXT);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY, state_digest TEXT, t_ms REAL, how TEXT);
CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, data BLOB);
CREATE TABLE IF NOT EXISTS balances (
    kind TEXT, seq INTEGER, account TEXT, amount INTEGER, PRIMARY KEY (kind, seq, account));
CREATE TABLE IF NOT EXISTS view_changes (
    id INTEGER PRIMARY KEY, t_ms REAL, direction TEXT, new_view INTEGER, replica TEXT,
    checkpoint_seq INTEGER, prepared TEXT, preprepared TEXT);
CREATE TABLE IF NOT EXISTS new_views (
    id INTEGER PRIMARY KEY, t_ms REAL, view INTEGER, leader TEXT, view_changes TEXT,
    proposals TEXT);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, t_ms REAL, kind TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS metrics (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS final (key TEXT PRIMARY KEY, value TEXT);
CREATE INDEX IF NOT EXISTS status_history_seq ON status_history (seq);
"""

_RUN_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sets (
    number INTEGER PRIMARY KEY, started_at REAL, duration_s REAL, ended_by TEXT,
    agreement INTEGER, failure TEXT, report TEXT);
CREATE TABLE IF NOT EXISTS transactions (
    set_number INTEGER, idx INTEGER, line INTEGER, client TEXT, kind TEXT, args TEXT,
    outcome TEXT, result TEXT, latency_ms REAL, PRIMARY KEY (set_number, idx));
"""


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        if not path.exists():
            raise FileNotFoundError(path)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


# ---- describing messages and requests ------------------------------------------------------


def request_json(request: Request) -> dict[str, Any]:
    """A request as the JSON report and the database show it."""
    return {
        "client": request.client,
        "timestamp": request.timestamp,
        "kind": request.op,
        "args": list(request.args),
    }


def _short(digest: bytes) -> str:
    return digest.hex()[:DIGEST_HEX_CHARS]


def _request_text(request: Request) -> str:
    text = operation_text(request.op, request.args)  # SendPayment(E, B, 10)
    if text is None:
        text = f"{request.op}({','.join(str(a) for a in request.args)})"
    return f"{request.client}#{request.timestamp} {text}"


def _first_few(total: int, label: str, texts: Iterable[str]) -> str:
    """``<total> <label>: a; b; c; d; +N more``, from the texts of the first `SHOWN_MAX` items."""
    more = f"; +{total - SHOWN_MAX} more" if total > SHOWN_MAX else ""
    return f"{total} {label}: {'; '.join(texts)}{more}"


def _batch_text(batch: tuple[Request, ...]) -> str:
    if not batch:
        return "no-op"
    return _first_few(len(batch), "req", (_request_text(r) for r in batch[:SHOWN_MAX]))


def _reply_text(reply: Reply) -> str:
    kind = "read " if reply.read_only else ""
    return f"{kind}{reply.client}#{reply.timestamp} -> {reply.result}"


def _seqs(proofs: Iterable[Any]) -> str:
    return ",".join(str(p.seq) for p in proofs) or "-"


@dataclass(frozen=True)
class MessageInfo:
    type: str
    view: int | None
    seq: int | None
    digest: str | None
    summary: str


def describe(message: Message) -> MessageInfo:
    """Type, view, seq, short digest and a one-line summary of a message, for the log."""
    name = type(message).__name__
    view: int | None = getattr(message, "view", None)
    seq: int | None = getattr(message, "seq", None)
    digest_raw: bytes | None = getattr(message, "digest", None)
    summary = ""
    if isinstance(message, Request):
        summary = _request_text(message) + (" read-only" if message.read_only else "")
    elif isinstance(message, Reply):
        summary = _reply_text(message)
    elif isinstance(message, PrePrepare):
        summary = _batch_text(message.batch)
    elif isinstance(message, Checkpoint):
        summary = f"state {_short(message.state_digest)}"
    elif isinstance(message, Status):
        summary = f"executed={message.last_executed} stable={message.stable_seq}"
    elif isinstance(message, Fetch):
        summary = f"after seq {message.after_seq}"
    elif isinstance(message, CatchUp):
        cp = message.checkpoint
        summary = (f"snapshot@{cp.seq} " if cp else "") + f"entries {_seqs(message.entries)}"
    elif isinstance(message, ViewChange):
        view = message.new_view
        cp_seq = message.checkpoint.seq if message.checkpoint else 0
        summary = f"checkpoint {cp_seq}; prepared {_seqs(message.prepared)}"
    elif isinstance(message, NewView):
        senders = ",".join(f"n{vc.replica}" for vc in message.view_changes)
        o = "; ".join(
            f"{p.seq}:{'no-op' if not p.batch else len(p.batch)}" for p in message.proposals
        )
        summary = f"V from {senders}; O {o or '-'}"
    if digest_raw is None and isinstance(message, PrePrepare):
        digest_raw = batch_digest(message.batch)
    digest = _short(digest_raw) if isinstance(digest_raw, bytes) and digest_raw else None
    return MessageInfo(name, view, seq, digest, summary[:SUMMARY_CHARS_MAX])


# ---- replica store ---------------------------------------------------------------------------


class ReplicaStore:
    """One replica's database for one set. Writers call `commit` once per loop iteration."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.db = _connect(self.path, read_only=read_only)
        self._message_rows: list[tuple[Any, ...]] = []
        self._status_rows: list[tuple[float, int, int, str]] = []
        self._slot_rows: dict[int, tuple[int, int, str, str | None, float]] = {}
        self._executed_rows: list[tuple[Any, ...]] = []
        if not read_only:
            self.db.executescript(_REPLICA_SCHEMA)
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self.db.commit()

    # ---- writing ---------------------------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()],
        )

    def log_message(
        self,
        t_ms: float,
        direction: str,
        peer: str,
        message: Message | None,
        size: int,
        note: str | None = None,
    ) -> None:
        if message is None:
            info = MessageInfo("?", None, None, None, "")
        else:
            info = describe(message)
            if isinstance(message, ViewChange):
                self._record_view_change(t_ms, direction, message)
        self._message_rows.append(
            (t_ms, direction, peer, info.type, info.view, info.seq, info.digest, size, info.summary, note)
        )

    def log_replies(self, t_ms: float, replies: list[tuple[str, Reply, bytes]]) -> None:
        """Replies sent under one signed root, as (client, reply, encoded): one row, like a
        broadcast (``peer`` lists the clients, ``size`` is their total); a lone reply is
        described as any message is."""
        if len(replies) == 1:
            client, reply, data = replies[0]
            self.log_message(t_ms, "out", client, reply, len(data))
            return
        clients = ",".join(client for client, _, _ in replies)
        total = sum(len(data) for _, _, data in replies)
        summary = _first_few(len(replies), "replies", (_reply_text(r) for _, r, _ in replies[:SHOWN_MAX]))
        view = replies[0][1].view
        self._message_rows.append(
            (t_ms, "out", clients, "Reply", view, None, None, total, summary[:SUMMARY_CHARS_MAX], None)
        )

    def _record_view_change(self, t_ms: float, direction: str, vc: ViewChange) -> None:
        self.db.execute(
            "INSERT INTO view_changes (t_ms, direction, new_view, replica, checkpoint_seq, prepared, preprepared)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                t_ms,
                direction,
                vc.new_view,
                replica_name(vc.replica),
                vc.checkpoint.seq if vc.checkpoint else 0,
                json.dumps([p.seq for p in vc.prepared]),
                json.dumps([p.seq for p in vc.preprepared]),
            ),
        )

    def record_event(self, t_ms: float, event: Event) -> None:
        if isinstance(event, StatusChanged):
            status = str(event.status)
            self._status_rows.append((t_ms, event.seq, event.view, status))
            # Only the latest status of each seq reaches slot_status, once per commit.
            self._slot_rows[event.seq] = (event.seq, event.view, status, _short(event.digest), t_ms)
        elif isinstance(event, Executed):
            self._executed_rows.append(
                (
                    event.seq,
                    event.view,
                    t_ms,
                    json.dumps([request_json(r) for r in event.batch]),
                    json.dumps(list(event.results)),
                    event.state_digest.hex() or None,
                )
            )
        elif isinstance(event, CheckpointStable | StateTransferred):
            how = "stable" if isinstance(event, CheckpointStable) else "transferred"
            self.db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                (event.seq, event.state_digest.hex(), t_ms, how),
            )
            if event.snapshot is not None:
                # The certified bytes as they are: decoded only when someone inspects them.
                self.db.execute(
                    "INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (event.seq, event.snapshot)
                )
            self._record_note(t_ms, f"checkpoint {how}", {"seq": event.seq})
        elif isinstance(event, NewViewInstalled):
            nv = event.message
            self.db.execute(
                "INSERT INTO new_views (t_ms, view, leader, view_changes, proposals) VALUES (?, ?, ?, ?, ?)",
                (
                    t_ms,
                    nv.view,
                    replica_name(nv.replica),
                    json.dumps(
                        [
                            {
                                "replica": replica_name(vc.replica),
                                "checkpoint_seq": vc.checkpoint.seq if vc.checkpoint else 0,
                                "prepared": [p.seq for p in vc.prepared],
                            }
                            for vc in nv.view_changes
                        ]
                    ),
                    json.dumps(
                        [
                            {"seq": p.seq, "requests": [request_json(r) for r in p.batch]}
                            for p in nv.proposals
                        ]
                    ),
                ),
            )
            self._record_note(
                t_ms, "new view installed", {"view": nv.view, "leader": replica_name(nv.replica)}
            )
        elif isinstance(event, ViewChangeStarted | Dropped):
            # The detail is the event's summary (runtime.summary), as `-v` and node logs show it.
            summary = event_summary(event)
            assert summary is not None
            kind = "view change started" if isinstance(event, ViewChangeStarted) else "dropped"
            self._record_note(t_ms, kind, summary[1])

    def _record_note(self, t_ms: float, kind: str, detail: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO events (t_ms, kind, detail) VALUES (?, ?, ?)",
            (t_ms, kind, json.dumps(detail)),
        )

    def _record_balances(self, kind: str, seq: int, balances: dict[str, int]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO balances VALUES (?, ?, ?, ?)",
            [(kind, seq, account, amount) for account, amount in sorted(balances.items())],
        )

    def record_final(
        self,
        *,
        view: int,
        view_active: bool,
        last_executed: int,
        stable_seq: int,
        balances: dict[str, int],
        metrics: dict[str, int],
    ) -> None:
        self._record_balances("final", last_executed, balances)
        self.db.execute("DELETE FROM balances WHERE kind = 'final' AND seq != ?", (last_executed,))
        self.db.executemany(
            "INSERT OR REPLACE INTO final VALUES (?, ?)",
            [
                ("view", str(view)),
                ("view_active", str(int(view_active))),
                ("last_executed", str(last_executed)),
                ("stable_seq", str(stable_seq)),
            ],
        )
        self.db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?)", sorted(metrics.items()))

    def _write_rows(self) -> None:
        """The message log, status history and executed batches are appended in bulk, once per
        commit (and slot_status gets one upsert per sequence number that moved)."""
        if self._message_rows:
            self.db.executemany(
                "INSERT INTO messages (t_ms, direction, peer, type, view, seq, digest, size, summary, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._message_rows,
            )
            self._message_rows.clear()
        if self._status_rows:
            self.db.executemany(
                "INSERT INTO status_history (t_ms, seq, view, status) VALUES (?, ?, ?, ?)",
                self._status_rows,
            )
            self._status_rows.clear()
        if self._executed_rows:
            self.db.executemany("INSERT OR REPLACE INTO executed VALUES (?, ?, ?, ?, ?, ?)", self._executed_rows)
            self._executed_rows.clear()
        if self._slot_rows:
            self.db.executemany(
                "INSERT OR REPLACE INTO slot_status VALUES (?, ?, ?, ?, ?)", list(self._slot_rows.values())
            )
            self._slot_rows.clear()

    def commit(self) -> None:
        self._write_rows()
        self.db.commit()

    def close(self) -> None:
        if not self.read_only:
            self._write_rows()
            self.db.commit()
        self.db.close()

    # ---- reading ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for row in self.db.execute("SELECT key, value FROM meta"):
            try:
                out[row["key"]] = json.loads(row["value"])
            except (TypeError, ValueError):
                out[row["key"]] = row["value"]
        return out

    def final(self) -> dict[str, int] | None:
        rows = {r["key"]: int(r["value"]) for r in self.db.execute("SELECT key, value FROM final")}
        return rows or None

    def balances(self, kind: str = "final", seq: int | None = None) -> dict[str, int]:
        if kind == "checkpoint":
            history = self.checkpoint_balances()
            if seq is None:
                return history[max(history)] if history else {}
            return history.get(seq, {})
        if seq is None:
            row = self.db.execute(
                "SELECT MAX(seq) FROM balances WHERE kind = ?", (kind,)
            ).fetchone()
            seq = row[0]
            if seq is None:
                return {}
        rows = self.db.execute(
            "SELECT account, amount FROM balances WHERE kind = ? AND seq = ? ORDER BY account",
            (kind, seq),
        )
        return {r["account"]: r["amount"] for r in rows}

    def checkpoint_balances(self) -> dict[int, dict[str, int]]:
        """Balances at every recorded checkpoint, from its snapshot (older databases: from
        ``balances`` rows of kind ``checkpoint``)."""
        out: dict[int, dict[str, int]] = {}
        for r in self.db.execute(
            "SELECT seq, account, amount FROM balances WHERE kind = 'checkpoint' ORDER BY seq, account"
        ):
            out.setdefault(r["seq"], {})[r["account"]] = r["amount"]
        if self._has_table("snapshots"):
            for r in self.db.execute("SELECT seq, data FROM snapshots ORDER BY seq"):
                out[r["seq"]] = dict(sorted(Bank.from_snapshot(r["data"]).balances.items()))
        return dict(sorted(out.items()))

    def _has_table(self, name: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def executed(self) -> list[dict[str, Any]]:
        return [
            {
                "seq": r["seq"],
                "view": r["view"],
                "t_ms": r["t_ms"],
                "requests": json.loads(r["requests"]),
                "results": json.loads(r["results"]),
                "state_digest": r["state_digest"],
            }
            for r in self.db.execute("SELECT * FROM executed ORDER BY seq")
        ]

    def messages(
        self, *, types: Iterable[str] | None = None, exclude: Iterable[str] = ()
    ) -> list[sqlite3.Row]:
        query, params = "SELECT * FROM messages", []
        clauses = []
        if types is not None:
            wanted = list(types)
            clauses.append(f"type IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        skipped = list(exclude)
        if skipped:
            clauses.append(f"type NOT IN ({','.join('?' * len(skipped))})")
            params.extend(skipped)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return list(self.db.execute(query + " ORDER BY id", params))

    def message_counts(self) -> dict[tuple[str, str], int]:
        """(direction, type) -> number of log rows."""
        return {
            (r[0], r[1]): r[2]
            for r in self.db.execute(
                "SELECT direction, type, COUNT(*) FROM messages GROUP BY direction, type"
            )
        }

    def slot_status(self, seq: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM slot_status WHERE seq = ?", (seq,)).fetchone()

    def slot_statuses(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM slot_status ORDER BY seq"))

    def status_history(self, seq: int) -> list[sqlite3.Row]:
        return list(
            self.db.execute("SELECT * FROM status_history WHERE seq = ? ORDER BY id", (seq,))
        )

    def checkpoints(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM checkpoints ORDER BY seq"))

    def view_changes(self) -> list[dict[str, Any]]:
        return [
            {
                "t_ms": r["t_ms"],
                "direction": r["direction"],
                "new_view": r["new_view"],
                "replica": r["replica"],
                "checkpoint_seq": r["checkpoint_seq"],
                "prepared": json.loads(r["prepared"]),
                "preprepared": json.loads(r["preprepared"]),
            }
            for r in self.db.execute("SELECT * FROM view_changes ORDER BY id")
        ]

    def new_views(self) -> list[dict[str, Any]]:
        return [
            {
                "t_ms": r["t_ms"],
                "view": r["view"],
                "leader": r["leader"],
                "view_changes": json.loads(r["view_changes"]),
                "proposals": json.loads(r["proposals"]),
            }
            for r in self.db.execute("SELECT * FROM new_views ORDER BY id")
        ]

    def events(self, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM events ORDER BY id")
        wanted = set(kinds) if kinds is not None else None
        return [
            {"t_ms": r["t_ms"], "kind": r["kind"], **json.loads(r["detail"])}
            for r in rows
            if wanted is None or r["kind"] in wanted
        ]

    def row_counts(self) -> dict[str, int]:
        """How many rows the inspection tables hold: messages, executed, status_history, new_views."""
        return {
            table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("messages", "executed", "status_history", "new_views")
        }

    def metrics(self) -> dict[str, int]:
        return {
            r["name"]: r["value"]
            for r in self.db.execute("SELECT name, value FROM metrics ORDER BY name")
        }

    def __enter__(self) -> ReplicaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- run index -------------------------------------------------------------------------------


def new_run_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def runs_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "runs"


def set_dir(run_dir: Path, set_number: int) -> Path:
    return run_dir / f"set-{set_number}"


def replica_db_file(directory: Path, replica_id: int) -> Path:
    """Replica `replica_id`'s inspection database in `directory` (a set's, a node's, a bench's)."""
    return directory / f"{replica_name(replica_id)}.sqlite"


def replica_db_path(run_dir: Path, set_number: int, replica_id: int) -> Path:
    return replica_db_file(set_dir(run_dir, set_number), replica_id)


class RunIndex:
    """The run-level index: what was played, how each set ended, every transaction's outcome."""

    FILE = "run.sqlite"

    def __init__(self, run_dir: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.dir = Path(run_dir)
        self.db = _connect(self.dir / self.FILE, read_only=read_only)
        if not read_only:
            self.db.executescript(_RUN_SCHEMA)
            self.db.commit()

    @classmethod
    def create(
        cls, data_dir: str | os.PathLike[str], *, scenario: str, options: dict[str, Any]
    ) -> RunIndex:
        run_id = new_run_id()
        index = cls(runs_dir(data_dir) / run_id)
        index.set_info(id=run_id, scenario=scenario, started_at=time.time(), options=options)
        return index

    @property
    def run_id(self) -> str:
        return self.dir.name

    def set_info(self, **values: Any) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO run VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )
        self.db.commit()

    def info(self) -> dict[str, Any]:
        return {
            r["key"]: json.loads(r["value"]) for r in self.db.execute("SELECT key, value FROM run")
        }

    def record_set(self, report: dict[str, Any], *, started_at: float) -> None:
        number = report["set"]
        self.db.execute(
            "INSERT OR REPLACE INTO sets VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                number,
                started_at,
                report.get("duration_s"),
                report.get("ended_by"),
                int(bool(report.get("agreement", {}).get("ok", True))),
                report.get("failure"),
                json.dumps(report),
            ),
        )
        self.db.execute("DELETE FROM transactions WHERE set_number = ?", (number,))
        self.db.executemany(
            "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    number,
                    i,
                    t.get("line"),
                    t["client"],
                    t["kind"],
                    json.dumps(t["args"]),
                    t["outcome"],
                    json.dumps(t["result"]),
                    t["latency_ms"],
                )
                for i, t in enumerate(report["transactions"])
            ],
        )
        self.db.commit()

    def sets(self) -> list[dict[str, Any]]:
        return [
            {
                "number": r["number"],
                "started_at": r["started_at"],
                "duration_s": r["duration_s"],
                "ended_by": r["ended_by"],
                "agreement": bool(r["agreement"]),
                "failure": r["failure"],
            }
            for r in self.db.execute("SELECT * FROM sets ORDER BY number")
        ]

    def set_report(self, number: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT report FROM sets WHERE number = ?", (number,)).fetchone()
        return json.loads(row["report"]) if row else None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_runs(data_dir: str | os.PathLike[str]) -> list[Path]:
    """Run directories with an index, oldest first."""
    root = runs_dir(data_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / RunIndex.FILE).is_file())


def find_run(data_dir: str | os.PathLike[str], run_id: str | None = None) -> Path | None:
    """The named run (an id or a unique prefix of one), or the latest run."""
    runs = list_runs(data_dir)
    if run_id is None:
        return runs[-1] if runs else None
    exact = [p for p in runs if p.name == run_id]
    if exact:
        return exact[0]
    matches = [p for p in runs if p.name.startswith(run_id)]
    return matches[0] if len(matches) == 1 else None


def set_numbers_on_disk(run_dir: Path) -> list[int]:
    """Sets that have replica databases (a set interrupted mid-run still has them)."""
    out = []
    for p in run_dir.glob("set-*"):
        suffix = p.name.removeprefix("set-")
        if p.is_dir() and suffix.isdigit():
            out.append(int(suffix))
    return sorted(out)
