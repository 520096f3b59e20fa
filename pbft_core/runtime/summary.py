"""Protocol events and messages as text: the one place that says how each is summarised.

Two forms of an event:

- `event_summary`: ``(kind, detail)``, a short kind (``view-change``, ``new-view``,
  ``checkpoint``, ``state-transfer``, ``dropped``) and a msgpack/JSON-friendly detail map. A
  pipes worker forwards it to the driver for ``pbft run -v``; a TCP node logs it as
  ``event=protocol.<kind>`` with the detail as fields. Events not worth showing live are None.
- `event_text`: that summary as one human line (rich markup when asked), what ``-v`` prints.

And one trace line per event (`describe_event`) or message (`describe`) for the simulator's
``--replay -v``, where every executed batch and every delivery is a line.
"""

from __future__ import annotations

from typing import Any

from ..config import replica_name
from ..messages import Message, Request
from ..ready import (
    CheckpointStable,
    Dropped,
    Event,
    Executed,
    NewViewInstalled,
    StateTransferred,
    ViewChangeStarted,
)

EventSummary = tuple[str, dict[str, Any]]


def event_summary(event: Event) -> EventSummary | None:
    """(kind, detail) of a protocol event worth showing live, or None."""
    if isinstance(event, ViewChangeStarted):
        return "view-change", {"new_view": event.new_view, "reason": event.reason}
    if isinstance(event, NewViewInstalled):
        nv = event.message
        return "new-view", {
            "view": nv.view,
            "leader": replica_name(nv.replica),
            "from": [replica_name(vc.replica) for vc in nv.view_changes],
            "proposals": [[p.seq, len(p.batch)] for p in nv.proposals],
        }
    if isinstance(event, CheckpointStable):
        return "checkpoint", {"seq": event.seq}
    if isinstance(event, StateTransferred):
        return "state-transfer", {"seq": event.seq}
    if isinstance(event, Dropped):
        return "dropped", {
            "reason": event.reason,
            "type": event.message_type,
            "sender": event.sender,
        }
    return None


def _style(text: str, style: str, markup: bool) -> str:
    return f"[{style}]{text}[/{style}]" if markup else text


def event_text(kind: str, detail: dict[str, Any], *, markup: bool = False) -> str | None:
    """One line for an `event_summary` (None for a kind it does not know)."""
    if kind == "view-change":
        head = _style(f"view change → v{detail['new_view']}", "yellow", markup)
        return f"{head} ({detail['reason']})"
    if kind == "new-view":
        proposals = ", ".join(f"{seq}:{'no-op' if n == 0 else f'{n} req'}" for seq, n in detail["proposals"])
        head = _style(f"installed NEW-VIEW v{detail['view']}", "cyan", markup)
        return f"{head} from {detail['leader']} · V from {', '.join(detail['from'])} · O {proposals or '-'}"
    if kind == "checkpoint":
        return _style(f"checkpoint {detail['seq']} stable", "green", markup)
    if kind == "state-transfer":
        return _style(f"installed a certified snapshot at {detail['seq']}", "green", markup)
    if kind == "dropped":
        sender = str(detail["sender"])
        sender = f"n{sender}" if sender.isdigit() else sender
        first = _style("(first of its kind)", "dim", markup)
        return f"{_style('dropped', 'magenta', markup)} {detail['type']} from {sender}: {detail['reason']} {first}"
    return None


def describe_event(event: Event) -> str | None:
    """A one-line summary of a protocol event for traces (None: not worth a line)."""
    if isinstance(event, Executed):
        keys = ",".join(f"{r.client}{r.timestamp}" for r in event.batch) or "no-op"
        return f"executes seq={event.seq} view={event.view} [{keys}] -> {list(event.results)}"
    if isinstance(event, ViewChangeStarted):
        return f"starts view change to {event.new_view} ({event.reason})"
    if isinstance(event, NewViewInstalled):
        return f"installs new view {event.view} (O: {len(event.message.proposals)} proposals)"
    if isinstance(event, CheckpointStable):
        return f"checkpoint stable seq={event.seq} d={event.state_digest[:3].hex()}"
    if isinstance(event, StateTransferred):
        return f"state transferred to seq={event.seq} d={event.state_digest[:3].hex()}"
    if isinstance(event, Dropped):
        return f"drops {event.message_type} from {event.sender}: {event.reason}"
    return None


def describe(message: Message) -> str:
    """A one-line summary of a message for traces: type and the fields that identify it."""
    name = type(message).__name__
    parts = []
    for attr in ("view", "new_view", "seq", "after_seq", "last_executed", "client", "timestamp", "result"):
        value = getattr(message, attr, None)
        if value is not None:
            parts.append(f"{attr}={value!r}" if attr in ("client", "result") else f"{attr}={value}")
    digest = getattr(message, "digest", None) or getattr(message, "state_digest", None)
    if isinstance(digest, bytes):
        parts.append(f"d={digest[:3].hex()}")
    batch = getattr(message, "batch", None)
    if batch is not None:
        parts.append("batch=[" + ",".join(f"{r.client}{r.timestamp}" for r in batch) + "]")
    if isinstance(message, Request):
        parts.append(f"{message.op}{message.args}")
    return f"{name}({', '.join(parts)})"
