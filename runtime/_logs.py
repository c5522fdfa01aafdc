"""Log output of the ``rtrun`` command line: a terminal view, a log file, JSON lines.

Robots often run unattended, so logs must be machine-readable and timestamped precisely:

* ``text`` (default) on stderr: rich's handler on a terminal, one line per record, with a
  millisecond wall-clock timestamp on every line (never omitted when repeated).
* ``json``: one JSON object per line, ``{"ts", "level", "logger", "actor"?, "host"?, "msg",
  "exc"?}``; ``ts`` is ISO 8601 with milliseconds and the UTC offset.
* ``--log-file PATH`` appends every record to ``PATH`` as well (plain text lines with an ISO
  timestamp, or JSON lines), whatever stderr shows.

Under ``--isolate`` each host process logs to its stderr pipe in the launcher's format; the
launcher forwards each line (:func:`forward_host_line`) to its own stderr and log file, tagged with
the host: ``[host] line`` in text, a ``"host"`` field in JSON.

Logging must never take a process down: a handler that cannot write (a closed pipe, a full disk)
reports once through :mod:`logging`'s own error path and the record is dropped.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TextIO

__all__ = ["LOG_FORMATS", "LogFormat", "forward_host_line", "setup_logging"]

LogFormat = Literal["text", "json"]
"""How records are written: human-readable lines or JSON lines."""
LOG_FORMATS: Final = ("text", "json")
"""The values of ``--log-format``."""
ACTOR_LOGGER_PREFIX: Final = "rtrun.actor."
"""Loggers of actors are named ``rtrun.actor.<id>``."""


@dataclass
class _Sinks:
    """Where forwarded host lines go (set by :func:`setup_logging`)."""

    fmt: LogFormat = "text"
    stream: TextIO | None = None
    file: TextIO | None = None


_sinks = _Sinks()


def _actor_of(record: logging.LogRecord) -> str | None:
    name = record.name
    return name.removeprefix(ACTOR_LOGGER_PREFIX) if name.startswith(ACTOR_LOGGER_PREFIX) else None


def _prefix(record: logging.LogRecord) -> str:
    actor = _actor_of(record)
    return f"[{actor}]" if actor is not None else f"{record.name}:"


def _iso_ms(created: float) -> str:
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class _PrefixFormatter(logging.Formatter):
    """``[actor] message`` for actor loggers, ``rtrun.x: message`` for the runtime."""

    def format(self, record: logging.LogRecord) -> str:
        record.rtrun_prefix = _prefix(record)
        return super().format(record)


class _PlainFormatter(_PrefixFormatter):
    """``2026-12-07T23:18:34.123+00:00 INFO [actor] message`` (log files)."""

    def __init__(self) -> None:
        super().__init__("%(rtrun_time)s %(levelname)s %(rtrun_prefix)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rtrun_time = _iso_ms(record.created)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _iso_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        actor = _actor_of(record)
        if actor is not None:
            entry["actor"] = actor
        entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _rich_handler(stream: TextIO) -> logging.Handler:
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.text import Text

    def stamp(when: datetime) -> Text:
        return Text(when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}")

    console = Console(file=stream, width=140, force_terminal=None)
    handler = RichHandler(
        console=console,
        show_path=False,
        rich_tracebacks=False,
        markup=False,
        omit_repeated_times=False,
        log_time_format=stamp,
    )
    handler.setFormatter(_PrefixFormatter("%(rtrun_prefix)s %(message)s"))
    return handler


def _stream_handler(fmt: LogFormat, stream: TextIO) -> logging.Handler:
    if fmt == "text":
        return _rich_handler(stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    return handler


def _file_handler(fmt: LogFormat, path: str) -> logging.FileHandler:
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(JsonFormatter() if fmt == "json" else _PlainFormatter())
    return handler


def setup_logging(
    level: str, stream: TextIO | None = None, *, fmt: LogFormat = "text", file: str | None = None
) -> None:
    """Configure the root logger: ``fmt`` records on ``stream`` (stderr), and on ``file`` if given.

    Raises:
        OSError: ``file`` cannot be opened for appending.
    """
    stream = stream or sys.stderr
    handlers = [_stream_handler(fmt, stream)]
    file_handler = _file_handler(fmt, file) if file is not None else None
    if file_handler is not None:
        handlers.append(file_handler)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    logging.raiseExceptions = False  # a broken sink drops the record; it never raises into callers
    _sinks.fmt, _sinks.stream = fmt, stream
    _sinks.file = file_handler.stream if file_handler is not None else None


def forward_host_line(host: str, line: str) -> None:
    """Write one line logged by ``host``'s process to this process's stderr and log file."""
    text = _tag_json(host, line) if _sinks.fmt == "json" else f"[{host}] {line}"
    for sink in (_sinks.stream or sys.stderr, _sinks.file):
        if sink is None:
            continue
        try:
            sink.write(text + "\n")
            sink.flush()
        except (OSError, ValueError):  # closed or broken sink: the line is lost, the launcher lives
            pass


def _tag_json(host: str, line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        entry = {"msg": line}
    return json.dumps({"host": host, **entry}, ensure_ascii=False)
