"""Clients of the point-cloud server, async and sync.

Async: :func:`aget_cloud`, :func:`asubscribe`, :func:`ainfo`, :func:`aget_compat`.
Sync (for scripts and notebooks; the same protocol over websockets' threaded client):
:func:`get_cloud`, :func:`subscribe`, :func:`info`, :func:`get_compat`.

``url`` is ``ws://HOST:PORT`` (``http://`` is read as ``ws://``); the path is chosen per call
(``/v1`` for binary mode, ``/`` for compatible mode) unless the URL names one. Errors the server
sends, refused connections and cut messages raise :class:`~depthcloud.errors.ProtocolError`.
This module must not import the server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from depthcloud import _validate as v
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError, MissingDependencyError, ProtocolError
from depthcloud.serve import protocol

__all__ = [
    "aget_cloud",
    "aget_compat",
    "ainfo",
    "asubscribe",
    "get_cloud",
    "get_compat",
    "info",
    "subscribe",
]

DEFAULT_MAX_MESSAGE_MB = 256.0


def _url(url: str, default_path: str) -> str:
    if not isinstance(url, str) or not url:
        raise InputError(f"url: expected 'ws://HOST:PORT[/PATH]', got {url!r}")
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise InputError(f"url: expected 'ws://HOST:PORT[/PATH]', got {url!r}")
    path = parts.path if parts.path not in ("", "/") else default_path
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _headers(token: str | None) -> dict[str, str] | None:
    return None if token is None else {"Authorization": f"Bearer {token}"}


def _request(op: str, **fields: Any) -> str:
    doc = {"op": op, **{k: val for k, val in fields.items() if val is not None}}
    text = json.dumps(doc)
    try:  # the server's own validation, so a bad argument fails here, before connecting
        protocol.parse_request(text)
    except ProtocolError as exc:
        raise InputError(exc.message.removeprefix("request: ")) from exc
    return text


def _get_fields(encoding: str, colors: bool, compress: str, max_points: int | None,
                decimation: int | None) -> dict[str, Any]:
    return {"encoding": encoding, "colors": bool(colors), "compress": compress, "max_points": max_points,
            "decimation": decimation}


def _cloud_of(reply: str | bytes) -> PointCloud:
    if isinstance(reply, str):
        doc = protocol.decode_text_reply(reply)
        raise ProtocolError(f"expected a cloud, got a {doc.get('type')!r} reply")
    return protocol.decode_cloud(reply)[1]


def _limit(max_message_mb: float) -> int:
    return int(v.number("max_message_mb", max_message_mb, positive=True) * 2**20)


def _translate(exc: Exception, url: str) -> ProtocolError:
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    if isinstance(exc, InvalidStatus):
        body = exc.response.body.decode("utf-8", "replace").strip()
        return ProtocolError(f"{url}: refused with HTTP {exc.response.status_code}: {body}")
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        why = f"code {rcvd.code}: {rcvd.reason}" if rcvd is not None else "no close frame"
        return ProtocolError(f"{url}: connection closed ({why})")
    if isinstance(exc, TimeoutError):
        return ProtocolError(f"{url}: no answer in time")
    if isinstance(exc, OSError) and exc.strerror:  # refused, unreachable: the reason, without "[Errno 111]"
        return ProtocolError(f"{url}: cannot connect: {exc.strerror[:1].lower()}{exc.strerror[1:]}")
    return ProtocolError(f"{url}: {exc}" if str(exc) else f"{url}: {type(exc).__name__}")


def _websockets_errors() -> tuple[type[Exception], ...]:
    try:
        from websockets.exceptions import WebSocketException
    except ImportError as exc:
        raise MissingDependencyError.for_extra("websockets", "serve") from exc
    return (WebSocketException, OSError, TimeoutError)


@contextlib.asynccontextmanager
async def _aconnect(url: str, token: str | None, max_message_mb: float, timeout_s: float) -> AsyncIterator[Any]:
    errors = _websockets_errors()
    from websockets.asyncio.client import connect

    try:
        async with connect(url, additional_headers=_headers(token), max_size=_limit(max_message_mb),
                           compression=None, open_timeout=timeout_s, close_timeout=2) as ws:
            yield ws
    except errors as exc:
        raise _translate(exc, url) from exc


async def _arecv(ws: Any, timeout_s: float) -> str | bytes:
    import asyncio

    return await asyncio.wait_for(ws.recv(), timeout_s)


async def aget_cloud(
    url: str,
    *,
    encoding: str = "f32",
    colors: bool = True,
    compress: str = "none",
    max_points: int | None = None,
    decimation: int | None = None,
    token: str | None = None,
    timeout_s: float = 10.0,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
) -> PointCloud:
    """The server's newest cloud (binary mode, ``/v1``): points (N, 3) float32 metres in the
    server's frame, colours (N, 3) uint8 when asked and available. See docs/protocol.md for the
    encodings (f32, f16, i16mm, compact) and compression (none, zstd, deflate)."""
    target = _url(url, "/v1")
    request = _request("get", **_get_fields(encoding, colors, compress, max_points, decimation))
    async with _aconnect(target, token, max_message_mb, timeout_s) as ws:
        await ws.send(request)
        return _cloud_of(await _arecv(ws, timeout_s))


async def asubscribe(
    url: str,
    *,
    max_fps: float | None = None,
    encoding: str = "f32",
    colors: bool = True,
    compress: str = "none",
    max_points: int | None = None,
    decimation: int | None = None,
    token: str | None = None,
    timeout_s: float = 10.0,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
) -> AsyncIterator[PointCloud]:
    """Yield each new cloud as the server makes it (at most ``max_fps`` per second). A slow
    consumer gets the newest cloud, not a backlog. A server error (e.g. the source failed) raises
    ProtocolError; ``timeout_s`` bounds the wait for each cloud."""
    target = _url(url, "/v1")
    request = _request("subscribe", max_fps=max_fps,
                       **_get_fields(encoding, colors, compress, max_points, decimation))
    async with _aconnect(target, token, max_message_mb, timeout_s) as ws:
        await ws.send(request)
        protocol.decode_text_reply(await _arecv(ws, timeout_s))  # the "subscribed" acknowledgement
        while True:
            yield _cloud_of(await _arecv(ws, timeout_s))


async def ainfo(url: str, *, token: str | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
    """The server's ``info`` document (source, state, newest seq, point count, limits)."""
    target = _url(url, "/v1")
    async with _aconnect(target, token, 1.0, timeout_s) as ws:
        await ws.send(_request("info"))
        reply = await _arecv(ws, timeout_s)
    if isinstance(reply, bytes):
        raise ProtocolError("expected an info reply, got a binary message")
    return protocol.decode_text_reply(reply)


async def aget_compat(
    url: str, decimation: int = 2, *, token: str | None = None, timeout_s: float = 10.0,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
) -> PointCloud:
    """What a Grasshopper client gets (compatible mode, ``/``): send the magnitude 1..8 as text,
    parse the JSON list of [x, y, z] metres. Colours are not part of this mode."""
    m = v.integer("decimation", decimation, low=1, high=8)
    target = _url(url, "/")
    async with _aconnect(target, token, max_message_mb, timeout_s) as ws:
        await ws.send(str(m))
        reply = await _arecv(ws, timeout_s)
    return PointCloud(protocol.decode_compat(reply).astype("float32"))


# -- sync --------------------------------------------------------------------------------------

@contextlib.contextmanager
def _connect(url: str, token: str | None, max_message_mb: float, timeout_s: float) -> Iterator[Any]:
    errors = _websockets_errors()
    from websockets.sync.client import connect

    try:
        with connect(url, additional_headers=_headers(token), max_size=_limit(max_message_mb),
                     compression=None, open_timeout=timeout_s, close_timeout=2) as ws:
            yield ws
    except errors as exc:
        raise _translate(exc, url) from exc


def _why_silent(url: str, token: str | None) -> str:
    """What the server says about itself when a request went unanswered (its source's state and last
    error, from ``info``, which never waits for a frame), or ""."""
    try:
        doc = info(url, token=token, timeout_s=2.0)
    except (ProtocolError, InputError):
        return ""
    state, error = doc.get("state"), doc.get("last_error")
    if state in (None, "running") and not error:
        return ""
    return f"; the server says: the source is {state}" + (f": {error}" if error else "")


def _recv_or_why(ws: Any, url: str, token: str | None, timeout_s: float) -> str | bytes:
    try:
        return ws.recv(timeout=timeout_s)  # type: ignore[no-any-return]
    except TimeoutError:
        raise ProtocolError(f"{url}: no answer within {timeout_s:g} s{_why_silent(url, token)}") from None


def get_cloud(
    url: str,
    *,
    encoding: str = "f32",
    colors: bool = True,
    compress: str = "none",
    max_points: int | None = None,
    decimation: int | None = None,
    token: str | None = None,
    timeout_s: float = 10.0,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
) -> PointCloud:
    """Sync form of :func:`aget_cloud`."""
    target = _url(url, "/v1")
    request = _request("get", **_get_fields(encoding, colors, compress, max_points, decimation))
    with _connect(target, token, max_message_mb, timeout_s) as ws:
        ws.send(request)
        return _cloud_of(_recv_or_why(ws, target, token, timeout_s))


def subscribe(
    url: str,
    *,
    max_fps: float | None = None,
    encoding: str = "f32",
    colors: bool = True,
    compress: str = "none",
    max_points: int | None = None,
    decimation: int | None = None,
    token: str | None = None,
    timeout_s: float = 10.0,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
) -> Iterator[PointCloud]:
    """Sync form of :func:`asubscribe` (a generator; close it to disconnect)."""
    target = _url(url, "/v1")
    request = _request("subscribe", max_fps=max_fps,
                       **_get_fields(encoding, colors, compress, max_points, decimation))
    with _connect(target, token, max_message_mb, timeout_s) as ws:
        ws.send(request)
        protocol.decode_text_reply(ws.recv(timeout=timeout_s))
        while True:
            yield _cloud_of(ws.recv(timeout=timeout_s))


def info(url: str, *, token: str | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
    """Sync form of :func:`ainfo`."""
    target = _url(url, "/v1")
    with _connect(target, token, 1.0, timeout_s) as ws:
        ws.send(_request("info"))
        reply = ws.recv(timeout=timeout_s)
    if isinstance(reply, bytes):
        raise ProtocolError("expected an info reply, got a binary message")
    return protocol.decode_text_reply(reply)


def get_compat(
    url: str, decimation: int = 2, *, token: str | None = None, timeout_s: float = 10.0,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
) -> PointCloud:
    """Sync form of :func:`aget_compat`."""
    m = v.integer("decimation", decimation, low=1, high=8)
    target = _url(url, "/")
    with _connect(target, token, max_message_mb, timeout_s) as ws:
        ws.send(str(m))
        reply = ws.recv(timeout=timeout_s)
    return PointCloud(protocol.decode_compat(reply).astype("float32"))
