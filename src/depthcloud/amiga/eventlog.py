"""farm-ng event logs (``events_*.bin``): read and write them, and tell what is whole in a cut one.

The format is farm-ng-core's events file: a sequence of records, each a 4-byte little-endian length,
that many bytes of a serialised ``farm_ng.core.proto.Event``, then ``event.payload_length`` bytes of
the payload (a serialised protobuf message whose type the event's URI names). There is no header and
no index; files written here are read by farm-ng-core's ``EventsFileReader`` and the other way round.

A log cut short (a recorder killed mid-write, a copy that stopped) is read up to its last whole
record; :class:`EventLogReader` then says where the whole part ends and how many bytes are left over,
rather than failing or, as farm-ng-core's reader does, stopping silently.

This module must not open network connections.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from depthcloud.errors import FormatError, InputError, MissingDependencyError, OutputExistsError

__all__ = ["EventLogReader", "EventLogWriter", "LoggedEvent", "read_event_log"]

_LEN = struct.Struct("<I")
# An Event (URI, a few stamps) is small; a length beyond this means the bytes are not an event log.
_MAX_EVENT_BYTES = 1 << 20


def _event_cls() -> Any:
    try:
        from farm_ng.core.event_pb2 import Event
    except ImportError as exc:
        raise MissingDependencyError.for_extra("farm-ng-core", "amiga") from exc
    return Event


@dataclass(frozen=True)
class LoggedEvent:
    """One record: the ``Event`` (URI, stamps, sequence), its payload bytes, and the record's offset."""

    event: Any
    payload: bytes
    offset: int

    @property
    def path(self) -> str:
        """The event's URI path (``/disparity``; ``oak/1/disparity`` in AmigaOS 2.3 layouts)."""
        return str(self.event.uri.path)

    def query_value(self, key: str) -> str:
        """The value of ``key`` in the event's URI query (``a=1&b=2``), or ``""``."""
        for part in str(self.event.uri.query).split("&"):
            name, _, value = part.partition("=")
            if name == key:
                return value
        return ""

    @property
    def service_name(self) -> str:
        """The ``service_name`` from the URI query, or ``""``."""
        return self.query_value("service_name")

    @property
    def type_name(self) -> str:
        """The payload's full protobuf type name from the URI query (``farm_ng.oak.proto.OakFrame``)."""
        return self.query_value("type")


class EventLogReader:
    """Iterate the whole records of an event log; afterwards, ``problem`` says what was not whole.

    path: the ``.bin`` file. Iterating yields :class:`LoggedEvent` in file order. After iteration,
    ``complete`` is True when the file ended exactly at a record boundary; otherwise ``problem``
    describes the cut (offset, what was missing) and ``trailing_bytes`` counts the bytes not read.
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("no such file", path=self.path)
        if self.path.is_dir():
            raise InputError("is a folder, expected an event log (.bin)", path=self.path)
        self.count = 0
        self.problem: str | None = None
        self.trailing_bytes = 0
        self.size = self.path.stat().st_size

    @property
    def complete(self) -> bool:
        return self.problem is None

    def __iter__(self) -> Iterator[LoggedEvent]:
        Event = _event_cls()
        from google.protobuf.message import DecodeError

        self.count, self.problem, self.trailing_bytes = 0, None, 0
        with self.path.open("rb") as fh:
            while True:
                offset = fh.tell()
                head = fh.read(_LEN.size)
                if not head:
                    return
                if len(head) < _LEN.size:
                    self._cut(offset, f"record {self.count}: the length prefix is cut ({len(head)} of 4 bytes)")
                    return
                (n,) = _LEN.unpack(head)
                if n > _MAX_EVENT_BYTES:
                    self._cut(offset, f"record {self.count}: event length {n} is not plausible; not an event log here")
                    return
                raw = fh.read(n)
                if len(raw) < n:
                    self._cut(offset, f"record {self.count}: the event is cut ({len(raw)} of {n} bytes)")
                    return
                event = Event()
                try:
                    event.ParseFromString(raw)
                except DecodeError as exc:
                    self._cut(offset, f"record {self.count}: the event does not parse ({exc})")
                    return
                payload = fh.read(event.payload_length)
                if len(payload) < event.payload_length:
                    self._cut(
                        offset,
                        f"record {self.count} ({event.uri.path}): the payload is cut "
                        f"({len(payload)} of {event.payload_length} bytes)",
                    )
                    return
                self.count += 1
                yield LoggedEvent(event, payload, offset)

    def _cut(self, offset: int, why: str) -> None:
        self.trailing_bytes = self.size - offset
        self.problem = f"truncated at byte {offset} of {self.size}: {why}; {self.count} whole records read"


def read_event_log(path: str | PathLike[str], *, strict: bool = False) -> tuple[list[LoggedEvent], str | None]:
    """All whole records of an event log, and what was wrong with the rest (None when complete).

    strict: raise :class:`FormatError` (with the path) instead of returning a truncated log.
    """
    reader = EventLogReader(path)
    records = list(reader)
    if strict and reader.problem is not None:
        raise FormatError(reader.problem, path=reader.path)
    return records, reader.problem


class EventLogWriter:
    """Write an event log that farm-ng-core's ``EventsFileReader`` reads.

    path: the ``.bin`` file; an existing one is refused unless ``overwrite``. Use as a context
    manager; :meth:`write` appends one record. ``count`` records have been written.
    """

    def __init__(self, path: str | PathLike[str], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise OutputExistsError("exists; pass --overwrite to replace it", path=self.path)
        self._Event = _event_cls()
        self._fh: IO[bytes] | None = None
        self.count = 0

    def __enter__(self) -> EventLogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("wb")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def write(self, event: Any, payload: bytes) -> None:
        """Append ``event`` and ``payload``; ``event.payload_length`` is set to ``len(payload)``."""
        if self._fh is None:
            raise InputError("the event log is not open; use EventLogWriter as a context manager", path=self.path)
        if not isinstance(event, self._Event):
            raise InputError(f"event: expected farm_ng.core Event, got {type(event).__name__}")
        if not isinstance(payload, bytes):
            raise InputError(f"payload: expected bytes, got {type(payload).__name__}")
        if event.payload_length != len(payload):
            event = self._Event.FromString(event.SerializeToString())
            event.payload_length = len(payload)
        raw = event.SerializeToString()
        self._fh.write(_LEN.pack(len(raw)))
        self._fh.write(raw)
        self._fh.write(payload)
        self.count += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
