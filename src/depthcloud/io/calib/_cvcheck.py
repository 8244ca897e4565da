"""Matrix sizes in OpenCV FileStorage text, checked before OpenCV parses it.

OpenCV trusts a matrix's ``rows``, ``cols``, ``sizes`` and ``dt``: ``cols: 4294967295`` or a ``data``
list shorter than rows·cols·channels can corrupt the heap inside ``cv2.FileStorage`` (an abort, not an
exception). So every matrix node is found in the text first (YAML, XML or JSON, chosen as OpenCV
chooses: ``{`` → JSON, ``<`` → XML, else YAML) and refused unless its element count is sane and equals
the number of values in ``data``. Limits: :data:`MAX_MATRIX_DIM` per dimension and
:data:`MAX_MATRIX_ELEMENTS` in all (calibration matrices are tiny; maps of a few megapixels still fit).
This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from depthcloud.errors import FormatError
from depthcloud.io.calib._common import PathArg, _clip

MAX_MATRIX_DIM = 1 << 16
MAX_MATRIX_ELEMENTS = 1 << 26
_DT = re.compile(r"\s*(\d*)\s*([ucwsifdhr])\s*", re.I)  # OpenCV's dt: optional count, then a type letter
_XML_MAT = re.compile(r"<([A-Za-z_][\w.-]*)\s+type_id\s*=\s*\"opencv-(?:nd-)?matrix\"\s*>(.*?)</\1\s*>", re.S)
_XML_TAG = r"<{0}>\s*(.*?)\s*</{0}>"


def check_matrix_sizes(text: str, path: PathArg) -> None:
    """Raise FormatError when a matrix in FileStorage ``text`` has an insane or inconsistent size."""
    head = text.lstrip()
    if head.startswith("{"):
        _check_json(text, path)
    elif head.startswith("<"):
        _check_xml(text, path)
    else:
        _check_yaml(text, path)


def _check(key: str, dims: list[Any], dt: Any, count: int, path: PathArg) -> None:
    sizes = []
    for d in dims:
        n = _whole(d)
        if n is None or not 0 <= n <= MAX_MATRIX_DIM:
            raise FormatError(f"matrix dimension {_clip(str(d))!r} is not an integer in 0..{MAX_MATRIX_DIM}",
                              path=path, key=key)
        sizes.append(n)
    m = _DT.fullmatch(dt) if isinstance(dt, str) else None
    if m is None:
        raise FormatError(f"matrix dt {_clip(str(dt))!r} is not an OpenCV element type (u, c, w, s, i, f, d, h)",
                          path=path, key=key)
    channels = int(m.group(1) or 1)
    if not 1 <= channels <= 4:
        raise FormatError(f"matrix dt {dt!r}: expected 1 to 4 channels", path=path, key=key)
    total = channels
    for n in sizes:
        total *= n
    if total > MAX_MATRIX_ELEMENTS:
        raise FormatError(f"matrix of {total} values is larger than the limit ({MAX_MATRIX_ELEMENTS})",
                          path=path, key=key)
    if total != count:
        shape = "x".join(map(str, sizes))
        raise FormatError(f"matrix says {shape} with {channels} channel(s) = {total} values but its data has {count}",
                          path=path, key=key)


def _whole(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", x):
        return int(x)
    return None


def _walk(node: Any, key: str, path: PathArg, seen: set[int]) -> None:
    """Check every mapping that looks like a matrix (rows/cols or sizes, dt, data) in a parsed tree."""
    if id(node) in seen:  # aliases share nodes: visit each once, whatever the nesting
        return
    seen.add(id(node))
    if isinstance(node, dict):
        keys = set(node)
        if "data" in keys and "dt" in keys and ({"rows", "cols"} <= keys or "sizes" in keys):
            dims = [node["rows"], node["cols"]] if "sizes" not in keys else node["sizes"]
            if not isinstance(dims, list):
                raise FormatError("matrix sizes: expected a list of integers", path=path, key=key)
            data = node["data"]
            count = len(data) if isinstance(data, list) else (0 if data is None else -1)
            if count < 0:
                raise FormatError("matrix data: expected a list of numbers", path=path, key=key)
            _check(key, dims, node["dt"], count, path)
            return
        for k, item in node.items():
            _walk(item, f"{key}.{k}" if key else str(k), path, seen)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{key}[{i}]", path, seen)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that reads OpenCV's ``!!opencv-matrix`` (any unknown tag) as plain data."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


# Known tags keep their constructors (exact matches win); any other tag, e.g. !!opencv-matrix, is plain data.
_Loader.add_multi_constructor("", _untagged)
_Loader.add_multi_constructor("tag:yaml.org,2002:", _untagged)


def _check_yaml(text: str, path: PathArg) -> None:
    # OpenCV heads its YAML with "%YAML:1.0" (or "%YAML 1.2" in OpenCV 5), which PyYAML refuses.
    body = re.sub(r"\A\s*%YAML[: ]?[^\n]*\n", "", text)
    try:
        doc = yaml.load(body, Loader=_Loader)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        if "opencv-matrix" in text or "opencv-nd-matrix" in text:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise FormatError(f"not valid YAML, so its matrix sizes cannot be checked: {problem}", path=path,
                              line=None if mark is None else mark.line + 1) from exc
        return  # no matrix to lie about; OpenCV reports its own parse error
    try:
        _walk(doc, "", path, set())
    except RecursionError as exc:
        raise FormatError("nested too deeply", path=path) from exc


def _check_json(text: str, path: PathArg) -> None:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if "opencv-matrix" in text or "opencv-nd-matrix" in text:
            raise FormatError(f"not valid JSON, so its matrix sizes cannot be checked: {getattr(exc, 'msg', exc)}",
                              path=path, line=getattr(exc, "lineno", None)) from exc
        return
    try:
        _walk(doc, "", path, set())
    except RecursionError as exc:
        raise FormatError("nested too deeply", path=path) from exc


def _check_xml(text: str, path: PathArg) -> None:
    found = 0
    for m in _XML_MAT.finditer(text):
        found += 1
        key, body = m.group(1), m.group(2)
        tags = {t: re.search(_XML_TAG.format(t), body, re.S) for t in ("rows", "cols", "sizes", "dt", "data")}
        if tags["dt"] is None or tags["data"] is None or (tags["sizes"] is None and (tags["rows"] is None or tags["cols"] is None)):
            raise FormatError("matrix without rows, cols (or sizes), dt and data", path=path, key=key)
        sizes = tags["sizes"]
        dims: list[Any] = sizes.group(1).split() if sizes is not None else [tags["rows"].group(1), tags["cols"].group(1)]  # type: ignore[union-attr]
        _check(key, dims, tags["dt"].group(1), len(tags["data"].group(1).split()), path)  # type: ignore[union-attr]
    if found != text.count("opencv-matrix") + text.count("opencv-nd-matrix"):
        raise FormatError("a matrix element (type_id=\"opencv-matrix\") is not well formed", path=path)
