"""The TCP shell's log: stdlib `logging`, one logfmt line per event on stderr.

``t=2026-12-04T18:21:45.123Z node=n3 level=info event=peer.up peer=n2``

`NodeLog` is a `logging.LoggerAdapter` over the logger ``pbft.node.<name>``: ``info(event,
**fields)`` (shown with ``-v``), ``notice`` (always: start, stop, recovery) and ``warning``
(always, but at most one line per (event, reason) per `WARNING_INTERVAL_S`; the lines held
back are counted in the next one's ``suppressed`` field, so a flood of bad connections does not
become a flood of log lines). Formatting is `LogfmtFormatter`'s, rate limiting `WarningLimit`'s;
both are ordinary `logging` parts, so an embedding program can route or silence node logs the
usual way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

from .limits import WARNING_INTERVAL_S, WARNING_KEYS_MAX

# Between INFO (-v only) and WARNING: what a node always says about its life.
NOTICE = logging.INFO + 5
_LEVEL_NAMES = {logging.INFO: "info", NOTICE: "info", logging.WARNING: "warning"}


def _value(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"
        level = _LEVEL_NAMES.get(record.levelno, record.levelname.lower())
        node = getattr(record, "node", "?")
        parts = [f"t={stamp}", f"node={node}", f"level={level}", f"event={record.getMessage()}"]
        fields: dict[str, object] = getattr(record, "fields", {})
        parts.extend(f"{k}={_value(v)}" for k, v in fields.items())
        return " ".join(parts)


class WarningLimit(logging.Filter):
    """At most one warning per (event, reason) per interval; counts the ones held back."""

    def __init__(self) -> None:
        super().__init__()
        # Key -> (monotonic seconds of the last line written, lines suppressed since).
        self._recent: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        fields: dict[str, object] = getattr(record, "fields", {})
        key = (record.getMessage(), fields.get("reason"))
        now = time.monotonic()
        last, suppressed = self._recent.get(key, (-WARNING_INTERVAL_S, 0))
        if now - last < WARNING_INTERVAL_S:
            self._recent[key] = (last, suppressed + 1)
            return False
        if len(self._recent) > WARNING_KEYS_MAX:
            self._recent.clear()
        self._recent[key] = (now, 0)
        if suppressed:
            record.fields = {**fields, "suppressed": suppressed}
        return True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    def handleError(self, record: logging.LogRecord) -> None:
        """A closed or broken stderr must never stop a node."""


class NodeLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The log of one node (or tool): see the module docstring."""

    def __init__(self, node: str, *, verbose: bool, stream: TextIO | None = None) -> None:
        # One logger per log object (node names repeat across tests and pools in one process).
        logger = logging.Logger(f"pbft.node.{node}")
        logger.setLevel(logging.INFO if verbose else NOTICE)
        handler = _Handler(stream)  # None: sys.stderr
        handler.setFormatter(LogfmtFormatter())
        handler.addFilter(WarningLimit())
        logger.addHandler(handler)
        super().__init__(logger, {"node": node})
        self.node = node
        self.verbose = verbose

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = kwargs.pop("fields", {})
        kwargs["extra"] = {"node": self.node, "fields": fields}
        return msg, kwargs

    def info(self, event: str, **fields: object) -> None:  # type: ignore[override]
        self.log(logging.INFO, event, fields=fields)

    def notice(self, event: str, **fields: object) -> None:
        """Always shown: start, stop, recovery."""
        self.log(NOTICE, event, fields=fields)

    def warning(self, event: str, **fields: object) -> None:  # type: ignore[override]
        self.log(logging.WARNING, event, fields=fields)
