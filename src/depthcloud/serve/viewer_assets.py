"""The browser viewer's routes: ``GET /view`` (the page) and ``/view/viewer.js``, ``/view/viewer.css``.

The files are package data under ``depthcloud/serve/viewer/`` and are read once. Every response
carries a Content-Security-Policy that lets the page load and connect to its own origin only, so
the browser itself refuses anything from elsewhere. The page needs the server's token when one is
set (``/view?token=T``); the script and style sheet are the same for everyone and hold no data, so
they are served without it (a module script cannot carry the page's query string).

This module must not import the server.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

__all__ = ["CSP", "asset", "is_public", "response"]

#: scripts, styles, images and connections from the page's own origin only (websockets included)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_FILES = {
    "/view": ("index.html", "text/html; charset=utf-8"),
    "/view/": ("index.html", "text/html; charset=utf-8"),
    "/view/index.html": ("index.html", "text/html; charset=utf-8"),
    "/view/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/view/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
}
_PUBLIC = {"/view/viewer.js", "/view/viewer.css"}


@functools.cache
def _read(name: str) -> bytes:
    return resources.files("depthcloud.serve.viewer").joinpath(name).read_bytes()


def asset(path: str) -> tuple[bytes, str] | None:
    """(body, content type) of a viewer route, or None when ``path`` is not one."""
    found = _FILES.get(path)
    if found is None:
        return None
    return _read(found[0]), found[1]


def is_public(path: str) -> bool:
    """True for the viewer's script and style sheet, which need no token (they carry no data)."""
    return path in _PUBLIC


def response(path: str) -> Any:
    """A websockets HTTP Response (200, no-store, the CSP) for a viewer route, or None."""
    found = asset(path)
    if found is None:
        return None
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    body, kind = found
    headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                       ("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                       ("Connection", "close")])
    return Response(200, "OK", headers, body)
