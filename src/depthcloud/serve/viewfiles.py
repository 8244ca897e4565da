"""``depthcloud view FILE…``: cloud and mesh files served to the browser viewer (``/view``).

Each file becomes one *item*: a cloud read with :func:`depthcloud.io.read_cloud` (every format it
knows, PLY, PCD, XYZ, NPZ and whatever is added there), or a triangle mesh drawn as a surface — read
with :func:`depthcloud.surface.meshio.read_mesh` (PLY with a ``face`` element, OBJ, GLB). The server speaks the binary protocol's ``info``,
``get`` and ``subscribe`` on ``/v1`` (one cloud message per item, with ``item``/``items``/``name``
in the header and a ``faces`` field for meshes), ``/health`` and the viewer's page, on one port,
with the same token rules as ``depthcloud serve``.

This module must not parse command lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from depthcloud.cloud import PointCloud
from depthcloud.errors import ConfigError, DepthcloudError, FormatError, InputError, MissingDependencyError
from depthcloud.serve import protocol, viewer_assets
from depthcloud.serve.server import MAX_REQUEST_BYTES, _response, bound_port, is_loopback, token_ok, url_host

__all__ = ["FileViewServer", "ViewItem", "load_item"]

log = logging.getLogger("depthcloud.view")


@dataclass(frozen=True)
class ViewItem:
    """One file to show: ``cloud`` (points, colours, frame) and, for a mesh, ``faces`` (M, 3) int."""

    name: str
    cloud: PointCloud
    faces: np.ndarray | None = None


def load_item(path: str | Path) -> ViewItem:
    """Read a cloud or mesh file into a :class:`ViewItem` (see the module docstring)."""
    from depthcloud.io import CLOUD_EXTENSIONS, read_cloud
    from depthcloud.surface.meshio import MESH_EXTENSIONS, read_mesh

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    ext = p.suffix.lower()
    if ext not in CLOUD_EXTENSIONS and ext not in MESH_EXTENSIONS:
        raise FormatError(f"unknown point-cloud or mesh extension {ext or '(none)'!r}; clouds: "
                          f"{' '.join(CLOUD_EXTENSIONS)}; meshes: {' '.join(MESH_EXTENSIONS)}", path=p.name)
    if ext in MESH_EXTENSIONS and (ext != ".ply" or _ply_face_count(p) > 0):
        mesh = read_mesh(p)
        return ViewItem(p.name, PointCloud(mesh.vertices, mesh.colors, frame=mesh.frame), np.asarray(mesh.faces))
    return ViewItem(p.name, read_cloud(p))


def _ply_face_count(p: Path) -> int:
    from depthcloud.io.ply import parse_ply_header

    with p.open("rb") as f:
        head = f.read(64 * 1024)
    header = parse_ply_header(head, path=p.name)
    return sum(el.count for el in header.elements if el.name == "face")


class FileViewServer:
    """Serves :class:`ViewItem` s to the viewer. ``async with FileViewServer(items) as server:``.

    host/port: where to listen (loopback by default; port 0 = a free one). token: required on the
    page, ``/health`` and the websocket, as in ``depthcloud serve``.
    """

    def __init__(self, items: list[ViewItem], *, host: str = "127.0.0.1", port: int = 8787,
                 token: str | None = None) -> None:
        if not items:
            raise InputError("items: expected at least one file to show")
        self.items = list(items)
        self.host, self.token = host, token
        self._port = port
        self._server: Any = None
        self._started = time.monotonic()
        self._encoded: dict[tuple[str, str], list[bytes]] = {}

    @property
    def port(self) -> int:
        return bound_port(self._server)

    @property
    def url(self) -> str:
        """The viewer's page (with the token in its query when one is set)."""
        # a wildcard bind is reached through any of the machine's addresses; loopback always works here
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        query = "" if self.token is None else f"?token={self.token}"
        return f"http://{url_host(host)}:{self.port}/view{query}"

    async def start(self) -> FileViewServer:
        try:
            from websockets.asyncio.server import serve
        except ImportError as exc:
            raise MissingDependencyError.for_extra("websockets", "serve") from exc
        if not is_loopback(self.host):
            log.warning("binding %s: the files are visible to other machines%s", self.host,
                        "" if self.token else " and no --token is set")
        try:
            self._server = await serve(self._session, self.host, self._port, process_request=self._http,
                                       max_size=MAX_REQUEST_BYTES, compression=None, close_timeout=2,
                                       logger=log.getChild("websockets"))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.host}:{self._port} ({exc.strerror or exc})",
                              key="port") from exc
        self._started = time.monotonic()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FileViewServer:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        await self._server.serve_forever()

    def messages(self, encoding: str = "f32", compress: str = "none") -> list[bytes]:
        """One cloud message per item (colours included, faces for meshes), encoded once."""
        found = self._encoded.get((encoding, compress))
        if found is None:
            n = len(self.items)
            found = self._encoded[encoding, compress] = [
                protocol.encode_cloud(it.cloud, seq=0, encoding=encoding, colors=True, compress=compress,
                                      faces=it.faces, extra={"item": i, "items": n, "name": it.name})
                for i, it in enumerate(self.items)]
        return found

    def health(self) -> dict[str, Any]:
        return {"status": "ok",
                "source": {"spec": "view: " + ", ".join(it.name for it in self.items), "state": "running",
                           "fps": 0.0, "frames": len(self.items), "dropped": 0, "restarts": 0, "last_error": None},
                "seq": 0, "age_s": None, "clients": 0, "uptime_s": round(time.monotonic() - self._started, 1)}

    def info(self) -> dict[str, Any]:
        return {"type": "info", "server": "depthcloud", "protocol": protocol.VERSION, "source": "view",
                "state": "running", "last_error": None, "seq": 0, "stamp": None,
                "frame": self.items[0].cloud.frame, "count": sum(len(it.cloud) for it in self.items),
                "has_colors": any(it.cloud.has_colors for it in self.items), "decimation": 1,
                "encodings": ["f32", "f16", "i16mm"], "compressions": list(protocol.COMPRESSIONS),
                "items": len(self.items),
                "max_message_bytes": None, "max_request_bytes": MAX_REQUEST_BYTES}

    async def _http(self, connection: Any, request: Any) -> Any:
        parts = urlsplit(request.path)
        path = parts.path
        if not token_ok(self.token, request, parse_qs(parts.query)) and not viewer_assets.is_public(path):
            resp = connection.respond(http.HTTPStatus.UNAUTHORIZED,
                                      "missing or wrong token: open /view?token=TOKEN\n")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="depthcloud"'
            return resp
        if path == "/v1":
            return None
        if path == "/":
            resp = connection.respond(http.HTTPStatus.FOUND, "the viewer is at /view\n")
            resp.headers["Location"] = "/view" + (f"?{parts.query}" if parts.query else "")
            return resp
        page = viewer_assets.response(path)
        if page is not None:
            return page
        if path == "/health":
            return _response(http.HTTPStatus.OK, json.dumps(self.health()).encode(), "application/json")
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found; routes: /view, /v1 (websocket), /health\n")

    async def _session(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):  # a closed page ends its session; nothing else should
            async for message in ws:
                try:
                    req = protocol.parse_request(message)
                    if req.op in ("get", "subscribe") and req.encoding == "compact":
                        raise InputError("encoding compact needs a depth image; files are sent as points")
                    if req.op in ("get", "subscribe") and req.max_points is not None:
                        raise InputError("max_points does not apply to files shown whole")
                except DepthcloudError as exc:
                    await ws.send(protocol.error_message("bad_request", f"{type(exc).__name__}: {exc}"))
                    continue
                if req.op == "info":
                    await ws.send(json.dumps(self.info()))
                    continue
                if req.op == "subscribe":
                    await ws.send(json.dumps({"type": "subscribed", "max_fps": req.max_fps}))
                elif req.op == "unsubscribe":
                    await ws.send(json.dumps({"type": "unsubscribed"}))
                    continue
                for data in await asyncio.to_thread(self.messages, req.encoding, req.compress):
                    await ws.send(data)

