"""A client of the Amiga's OAK camera service: calibration, disparity frames, point clouds.

The service is farm-ng-core's gRPC ``EventService``. The client reads an ``EventServiceConfig`` JSON
(``service_config.json``), asks ``/calibration`` for an ``OakCalibration``, subscribes to
``/disparity`` with ``every_n``, and turns each disparity image into metric depth and points:

* disparity: 8-bit whole pixels, as the service sends it (JPEG, PNG or raw; see
  :func:`~depthcloud.amiga.messages.decode_disparity`);
* depth: Z = f·B/d with B the stereo baseline from the calibration extrinsics (centimetres → metres),
  and f the focal length of the camera the disparity is aligned to (socket 2, the right mono camera,
  by default), cameras picked by socket number and intrinsics scaled to the disparity resolution.

Layouts: a service named without a slash (``oak0``) publishes ``/disparity``; AmigaOS 2.3 names
(``oak/1``) publish ``oak/1/disparity``. A subscription in the config whose path ends in
``disparity`` overrides both.

Unlike farm-ng's own client, which retries forever, every wait here has a timeout and ends in
:class:`~depthcloud.errors.SourceTimeout`. This module must not import the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.cloud import PointCloud
from depthcloud.errors import (
    CalibrationError,
    ConfigError,
    FormatError,
    InputError,
    MissingDependencyError,
    ProtocolError,
    SourceError,
    SourceTimeout,
)
from depthcloud.frame import Frame
from depthcloud.geometry import HAVE_NUMBA, Unprojector

if HAVE_NUMBA:
    from numba import njit, prange

from .messages import OakMessages, decode_disparity, oak_messages

__all__ = [
    "DisparityModel",
    "DisparityModels",
    "OakClient",
    "OakDisparity",
    "ServiceConfig",
    "Subscription",
    "disparity_model",
    "parse_service_config",
    "read_service_config",
    "stream_path",
]

# Seconds a closing stream or channel may take before it is abandoned (Ctrl-C must stay prompt).
_CLOSE_TIMEOUT_S = 2.0

DEFAULT_MIN_DEPTH_M = 0.2
DEFAULT_MAX_DEPTH_M = 7.5


def stream_path(service_name: str, stream: str) -> str:
    """The path a service publishes ``stream`` on: ``/disparity`` for ``oak0``, ``oak/1/disparity``
    for AmigaOS 2.3 names (which contain a slash)."""
    return f"{service_name}/{stream}" if "/" in service_name else f"/{stream}"


# -- service_config.json ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """One entry of a config's ``subscriptions``: a URI path and query, and ``every_n``."""

    path: str
    query: str = ""
    every_n: int = 1


@dataclass(frozen=True)
class ServiceConfig:
    """farm-ng's ``EventServiceConfig`` for one service: where it listens and what to subscribe to."""

    name: str
    host: str
    port: int
    subscriptions: tuple[Subscription, ...] = ()
    log_level: str = "INFO"
    source: str | None = None

    def stream_path(self, stream: str) -> str:
        """The path of ``stream`` on this service; a matching subscription path wins."""
        for sub in self.subscriptions:
            if sub.path.rstrip("/").endswith(stream):
                return sub.path
        return stream_path(self.name, stream)

    def every_n(self, stream: str, default: int = 1) -> int:
        for sub in self.subscriptions:
            if sub.path.rstrip("/").endswith(stream):
                return sub.every_n
        return default

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_proto(self) -> Any:
        """The ``farm_ng.core.proto.EventServiceConfig`` message."""
        from farm_ng.core.event_service_pb2 import EventServiceConfig, SubscribeRequest
        from farm_ng.core.uri_pb2 import Uri

        return EventServiceConfig(
            name=self.name, host=self.host, port=self.port, log_level=self.log_level,
            subscriptions=[SubscribeRequest(uri=Uri(path=s.path, query=s.query), every_n=s.every_n)
                           for s in self.subscriptions],
        )


_LOG_LEVELS = ("NOTSET", "CRITICAL", "FATAL", "ERROR", "WARNING", "WARN", "INFO", "DEBUG")
_LOG_NUMBERS = {0: "NOTSET", 50: "CRITICAL", 40: "ERROR", 30: "WARNING", 20: "INFO", 10: "DEBUG"}


def _one_config(data: Any, where: str, path: str | None) -> ServiceConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected an object, got {type(data).__name__}", path=path, key=where or None)
    pre = f"{where}." if where else ""
    known = {"name", "host", "port", "subscriptions", "log_level", "logLevel", "uris", "args"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(str, unknown))}", path=path, key=where or None)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a service name such as 'oak0' or 'oak/1', got {name!r}", path=path,
                          key=f"{pre}name")
    host = data.get("host", "")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"expected a host such as 'localhost', got {host!r}", path=path, key=f"{pre}host")
    port = data.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"expected a port number 1..65535, got {port!r}", path=path, key=f"{pre}port")
    level = data.get("log_level", data.get("logLevel", "INFO"))
    if isinstance(level, int) and not isinstance(level, bool) and level in _LOG_NUMBERS:
        level = _LOG_NUMBERS[level]
    if level not in _LOG_LEVELS:
        raise ConfigError(f"expected one of {', '.join(_LOG_LEVELS)}, got {level!r}", path=path,
                          key=f"{pre}log_level")
    subs = []
    raw_subs = data.get("subscriptions", [])
    if not isinstance(raw_subs, list):
        raise ConfigError(f"expected a list, got {type(raw_subs).__name__}", path=path, key=f"{pre}subscriptions")
    for i, sub in enumerate(raw_subs):
        key = f"{pre}subscriptions[{i}]"
        uri = sub.get("uri") if isinstance(sub, Mapping) else None
        if not isinstance(uri, Mapping) or not isinstance(uri.get("path"), str):
            raise ConfigError("expected {\"uri\": {\"path\": ..., \"query\": ...}, \"every_n\": n}", path=path,
                              key=key)
        every_n = sub.get("every_n", sub.get("everyN", 1))
        if isinstance(every_n, bool) or not isinstance(every_n, int) or every_n < 0:
            raise ConfigError(f"expected an integer >= 0, got {every_n!r}", path=path, key=f"{key}.every_n")
        subs.append(Subscription(uri["path"], str(uri.get("query", "")), max(every_n, 1)))
    return ServiceConfig(name, host, port, tuple(subs), str(level), path)


def parse_service_config(data: Any, *, name: str | None = None, path: str | None = None) -> ServiceConfig:
    """A :class:`ServiceConfig` from the parsed JSON of ``service_config.json``.

    data: one ``EventServiceConfig`` object, or ``{"configs": [...]}`` (farm-ng's multi-service
    form), from which ``name`` picks one (the only one when ``name`` is None).
    Raises ConfigError naming the key and the value.
    """
    if isinstance(data, Mapping) and "configs" in data:
        configs = data["configs"]
        if not isinstance(configs, list) or not configs:
            raise ConfigError("expected a non-empty list of service configs", path=path, key="configs")
        parsed = [_one_config(c, f"configs[{i}]", path) for i, c in enumerate(configs)]
        if name is None:
            if len(parsed) > 1:
                names = ", ".join(c.name for c in parsed)
                raise ConfigError(f"holds several services ({names}); say which one", path=path, key="configs")
            return parsed[0]
        for cfg in parsed:
            if cfg.name == name:
                return cfg
        raise ConfigError(f"no service named {name!r} (have {', '.join(c.name for c in parsed)})", path=path,
                          key="configs")
    cfg = _one_config(data, "", path)
    if name is not None and cfg.name != name:
        raise ConfigError(f"the service is {cfg.name!r}, not {name!r}", path=path, key="name")
    return cfg


def read_service_config(path: str | PathLike[str], *, name: str | None = None) -> ServiceConfig:
    """Read ``service_config.json`` (see :func:`parse_service_config`)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError("no such file", path=p)
    if p.is_dir():
        raise ConfigError("is a folder, expected a service_config.json", path=p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", path=p) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", path=p, line=exc.lineno) from exc
    return parse_service_config(data, name=name, path=str(p))


# -- disparity → depth → points ---------------------------------------------------------------------


class DisparityModel:
    """What turns one camera's 8-bit disparity into depth and points.

    intrinsics: the pinhole (undistorted: disparity is computed on rectified images) of the camera the
    disparity is aligned to, at the disparity resolution. baseline_m: the stereo baseline.
    Depth is a 256-entry table, Z[d] = fx·B/d (d = 0 invalid), so a frame costs one lookup per pixel.
    """

    def __init__(self, intrinsics: Intrinsics, baseline_m: float) -> None:
        if not isinstance(intrinsics, Intrinsics):
            raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
        self.intrinsics = intrinsics.undistorted()
        self.baseline_m = v.number("baseline_m", baseline_m, positive=True)
        d = np.arange(256, dtype=np.float64)
        with np.errstate(divide="ignore"):
            lut = np.where(d > 0, self.intrinsics.fx * self.baseline_m / d, 0.0)
        self.depth_table = lut.astype(np.float32)
        self._unproject = Unprojector(self.intrinsics)
        # Pinhole rays per column and row, as the Unprojector computes them (x̂ = (u − cx)/fx, ...).
        self._xr, self._yr = self._unproject.rays[0, :, 0].copy(), self._unproject.rays[:, 0, 1].copy()
        # (min_depth_m, max_depth_m) → the disparity range [lo, hi] it keeps (None: none), per call pair.
        self._ranges: dict[tuple[float, float], tuple[np.uint8, np.uint8] | None] = {}

    @property
    def focal_px(self) -> float:
        return self.intrinsics.fx

    def depth_error_m(self, depth_m: float, disparity_error_px: float = 0.5) -> float:
        """How far Z = fB/d moves at ``depth_m`` when d is off by ``disparity_error_px``: Z²·Δd/(fB)."""
        return depth_m * depth_m * disparity_error_px / (self.focal_px * self.baseline_m)

    def _check(self, disparity: Any) -> np.ndarray:
        d = v.image("disparity", disparity, kinds="u")
        if d.dtype != np.uint8:
            raise InputError(f"disparity: expected uint8 whole-pixel disparity, got {d.dtype}")
        if d.shape != self.intrinsics.shape:
            raise InputError(
                f"disparity: its size {d.shape[1]}x{d.shape[0]} does not match the camera "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        return d

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """(H, W) uint8 disparity (pixels, 0 invalid) → (H, W) float32 metres (0 invalid)."""
        # OpenCV's table lookup is several times faster than numpy's fancy indexing on uint8.
        import cv2

        return cv2.LUT(self._check(disparity), self.depth_table)

    def _disparity_range(self, zmin: float, zmax: float) -> tuple[np.uint8, np.uint8] | None:
        """The disparities [lo, hi] whose depth lies in [zmin, zmax] (Z = f·B/d falls as d grows, so
        the kept ones are one run); None when there are none. Remembered per (zmin, zmax)."""
        key = (zmin, zmax)
        if key in self._ranges:
            return self._ranges[key]
        table = self.depth_table
        kept = np.flatnonzero((table > 0) & (table >= np.float32(zmin)) & (table <= np.float32(min(zmax, 3.0e38))))
        span = (np.uint8(kept[0]), np.uint8(kept[-1])) if kept.size else None
        if len(self._ranges) >= 64:
            self._ranges.clear()
        self._ranges[key] = span
        return span

    def cloud(
        self,
        disparity: np.ndarray,
        *,
        min_depth_m: float = DEFAULT_MIN_DEPTH_M,
        max_depth_m: float = DEFAULT_MAX_DEPTH_M,
        stamp: float | None = None,
    ) -> PointCloud:
        """(H, W) uint8 disparity → points (N, 3) float32 metres in the camera's optical frame,
        those with min_depth_m ≤ Z ≤ max_depth_m, in row-major pixel order.

        The same points as ``depth_to_points(self.depth(disparity), self.intrinsics, ...)``; with
        numba, one fused pass reads the 8-bit disparity through the depth table instead.
        """
        d = self._check(disparity)
        zmin = v.number("min_depth_m", min_depth_m, nonnegative=True)
        zmax = v.number("max_depth_m", max_depth_m, positive=True, allow_inf=True)
        if zmin > zmax:
            raise InputError(f"min_depth_m {zmin} exceeds max_depth_m {zmax}")
        if not HAVE_NUMBA:
            return self._unproject(self.depth(d), min_depth_m=zmin, max_depth_m=zmax, stamp=stamp)
        span = self._disparity_range(zmin, zmax)
        if span is None:
            return PointCloud._trusted(np.empty((0, 3), np.float32), None, None, "optical", stamp)
        lo, hi = span
        offsets = np.empty(d.shape[0] + 1, np.int64)
        out = np.empty((_count_kept(d, lo, hi, offsets), 3), np.float32)
        _write(d, lo, hi, self.depth_table, self._xr, self._yr, offsets, out.reshape(-1))
        return PointCloud._trusted(out, None, None, "optical", stamp)


if HAVE_NUMBA:
    from numba import uint64

    from depthcloud._jit import spill_safe_rows, store3_spill

    # Rows go to the threads in this many blocks of consecutive rows (2 cores: one each).
    _WRITE_CHUNKS = 2

    # Z = f·B/d falls as d grows, so a depth range is a disparity range [lo, hi], kept when the
    # unsigned byte d − lo is ≤ hi − lo. One cheap serial pass counts each row's kept pixels (16-bit
    # counters vectorise well; a parallel region costs more to start than the pass takes) into
    # offsets[r], where row r's points start, and returns the total.
    @njit(cache=True, nogil=True, boundscheck=False)
    def _count_kept(disp, lo, hi, offsets):  # type: ignore[no-untyped-def]
        h, w = disp.shape
        span = np.uint8(hi - lo)
        total = 0
        for r in range(h):
            offsets[r] = total
            if w <= 65535:  # a uint16 count cannot overflow
                c = np.uint16(0)
                for u in range(w):
                    c += np.uint16(np.uint8(disp[r, u] - lo) <= span)
                total += c  # type: ignore[assignment]
            else:
                for u in range(w):
                    total += np.uint8(disp[r, u] - lo) <= span  # type: ignore[assignment]
        offsets[h] = total
        return total

    # One parallel region; each block of rows writes straight into the output. Branch-free: every
    # pixel writes its point at a cursor that only kept pixels advance (the next one overwrites the
    # rest), with one spilling 4-lane store per point (depthcloud._jit.store3_spill); from the
    # block's last rows on the last point is stored exactly and the block stops once it is written,
    # so no write lands past the block's run (which belongs to the next block, or is past the end).
    # Unsigned indices: no wraparound code.
    @njit(parallel=True, cache=True, nogil=True, boundscheck=False)
    def _write_kept(disp, lo, hi, table, xr, yr, offsets, flat, chunks):  # type: ignore[no-untyped-def]
        # flat: the (N, 3) output as one run of 3N floats.
        h, w = disp.shape
        rows = (h + chunks - 1) // chunks
        for c in prange(chunks):
            r0 = min(h, c * rows)
            r1 = min(h, r0 + rows)
            k = uint64(3 * offsets[r0])
            end = uint64(3 * offsets[r1])
            rs = spill_safe_rows(offsets, r0, r1)
            for r in range(r0, r1):
                y = yr[r]
                for u in range(w):
                    if r >= rs and k == end:
                        break
                    dv = disp[r, u]
                    z = table[dv]
                    if r < rs or k + uint64(3) < end:
                        store3_spill(flat, k, xr[u] * z, y * z, z)  # type: ignore[call-arg]
                    else:
                        flat[k] = xr[u] * z
                        flat[k + uint64(1)] = y * z
                        flat[k + uint64(2)] = z
                    k += uint64(3) * uint64((dv >= lo) & (dv <= hi))


    # With AVX-512, 16 pixels at a time: one gather through the table, two multiplies, and three
    # compressing stores of the interleaved x, y, z of the kept ones. LLVM's generic masked
    # intrinsics, written here because numba cannot express a compressing store.
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.core import types as _types
    from numba.extending import intrinsic

    _I1, _I8, _I16, _I32, _I64, _F32 = (_ir.IntType(1), _ir.IntType(8), _ir.IntType(16), _ir.IntType(32),
                                        _ir.IntType(64), _ir.FloatType())

    def _v16(t, n=16):  # type: ignore[no-untyped-def]
        return _ir.VectorType(t, n)

    def _splat(builder, value):  # type: ignore[no-untyped-def]
        undef = _ir.Constant(_v16(value.type), _ir.Undefined)
        one = builder.insert_element(undef, value, _ir.Constant(_I32, 0))
        return builder.shuffle_vector(one, undef, _ir.Constant(_v16(_I32), [0] * 16))

    @intrinsic
    def _keep16(typingctx, row, table, xr, flat, u0, y, lo, span, k):  # type: ignore[no-untyped-def]
        """Write the points of the kept pixels among row[u0:u0+16] at flat[k:]; return how many.

        row, table, xr, flat: contiguous 1-D arrays (uint8, float32 ×3). Kept: uint8(d − lo) ≤ span.
        """
        sig = _types.int64(row, table, xr, flat, u0, y, lo, span, k)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            a = signature.args
            row_a, table_a, xr_a, flat_a = (context.make_array(a[i])(context, builder, args[i]) for i in range(4))
            u0_i = context.cast(builder, args[4], a[4], _types.int64)
            y32 = context.cast(builder, args[5], a[5], _types.float32)
            lo8 = context.cast(builder, args[6], a[6], _types.uint8)
            span8 = context.cast(builder, args[7], a[7], _types.uint8)
            k_i = context.cast(builder, args[8], a[8], _types.int64)
            mod = builder.module
            dptr = builder.bitcast(builder.gep(row_a.data, [u0_i]), _v16(_I8).as_pointer())
            dv = builder.load(dptr, align=1)
            keep = builder.icmp_unsigned("<=", builder.sub(dv, _splat(builder, lo8)), _splat(builder, span8))
            # z = table[d] for all 16: a gather from table + 4·d.
            base = _splat(builder, builder.ptrtoint(table_a.data, _I64))
            offs = builder.shl(builder.zext(dv, _v16(_I64)), _splat(builder, _ir.Constant(_I64, 2)))
            ptrs = builder.inttoptr(builder.add(base, offs), _v16(_F32.as_pointer()))
            opaque = getattr(ptrs.type.element, "is_opaque", False)
            gather = _cgutils.get_or_insert_function(
                mod, _ir.FunctionType(_v16(_F32), [ptrs.type, _I32, _v16(_I1), _v16(_F32)]),
                "llvm.masked.gather.v16f32.v16p0" + ("" if opaque else "f32"))
            z = builder.call(gather, [ptrs, _ir.Constant(_I32, 4), _ir.Constant(_v16(_I1), [1] * 16),
                                      _ir.Constant(_v16(_F32), _ir.Undefined)])
            xrv = builder.load(builder.bitcast(builder.gep(xr_a.data, [u0_i]), _v16(_F32).as_pointer()), align=4)
            x = builder.fmul(xrv, z)
            yv = builder.fmul(_splat(builder, y32), z)
            xy = builder.shuffle_vector(x, yv, _ir.Constant(_v16(_I32, 32), list(range(32))))
            zz = builder.shuffle_vector(z, _ir.Constant(_v16(_F32), _ir.Undefined),
                                        _ir.Constant(_v16(_I32, 32), list(range(16)) * 2))
            compress = _cgutils.get_or_insert_function(
                mod, _ir.FunctionType(_ir.VoidType(), [_v16(_F32), _F32.as_pointer(), _v16(_I1)]),
                "llvm.masked.compressstore.v16f32")
            ctpop = _cgutils.get_or_insert_function(mod, _ir.FunctionType(_I16, [_I16]), "llvm.ctpop.i16")
            out = builder.gep(flat_a.data, [k_i])
            total = _ir.Constant(_I64, 0)
            for j in range(3):  # output floats 16j..16j+15: pixel p // 3, coordinate p % 3
                pix = [p // 3 for p in range(16 * j, 16 * j + 16)]
                src = [p // 3 + 16 * (p % 3) for p in range(16 * j, 16 * j + 16)]
                part = builder.shuffle_vector(xy, zz, _ir.Constant(_v16(_I32), src))
                mask = builder.shuffle_vector(keep, _ir.Constant(_v16(_I1), _ir.Undefined), _ir.Constant(_v16(_I32), pix))
                builder.call(compress, [part, out, mask])
                n = builder.zext(builder.call(ctpop, [builder.bitcast(mask, _I16)]), _I64)
                out = builder.gep(out, [n])
                total = builder.add(total, n)
            return builder.udiv(total, _ir.Constant(_I64, 3))

        return sig, codegen

    @njit(parallel=True, cache=True, nogil=True, boundscheck=False)
    def _write_kept16(disp, lo, hi, table, xr, yr, offsets, flat, chunks):  # type: ignore[no-untyped-def]
        # As _write_kept; disp C-contiguous. Each row starts at its own offset (compressing stores
        # write only kept points, so blocks never overlap), the last w % 16 pixels one by one.
        h, w = disp.shape
        span = np.uint8(hi - lo)
        w16 = w - w % 16
        rows = (h + chunks - 1) // chunks
        for c in prange(chunks):
            r0 = min(h, c * rows)
            r1 = min(h, r0 + rows)
            for r in range(r0, r1):
                k = 3 * offsets[r]
                row = disp[r]
                y = yr[r]
                for u0 in range(0, w16, 16):
                    k += 3 * _keep16(row, table, xr, flat, u0, y, lo, span, k)  # type: ignore[call-arg]
                for u in range(w16, w):
                    dv = row[u]
                    if np.uint8(dv - lo) <= span:
                        z = table[dv]
                        flat[k] = xr[u] * z
                        flat[k + 1] = y * z
                        flat[k + 2] = z
                        k += 3

    def _has_avx512() -> bool:
        """True where the compressing-store kernel pays: AVX-512 on the CPU numba compiles for, and
        not an AMD Zen, whose compressing stores to memory are microcoded (measured: 1.2 ms a frame
        against 0.35 ms for the portable kernel on a Zen 4 EPYC, one thread)."""
        import numba
        from llvmlite import binding

        try:
            host = getattr(numba.config, "CPU_NAME", None) in (None, "host")
            return host and bool(binding.get_host_cpu_features()["avx512f"]) and not binding.get_host_cpu_name().startswith("znver")
        except Exception:  # pragma: no cover - an llvmlite without the query
            return False

    # The kernel in use: the AVX-512 one where the CPU has it and it compiles, else _write_kept.
    _AVX512 = [_has_avx512()]

    def _write(disp, lo, hi, table, xr, yr, offsets, flat):  # type: ignore[no-untyped-def]
        if _AVX512[0]:
            try:
                _write_kept16(np.ascontiguousarray(disp), lo, hi, table, xr, yr, offsets, flat, _WRITE_CHUNKS)
                return
            except Exception:  # pragma: no cover - an LLVM that cannot lower the intrinsics
                _AVX512[0] = False
        _write_kept(disp, lo, hi, table, xr, yr, offsets, flat, _WRITE_CHUNKS)


def _calibration_mapping(calibration: Any) -> Mapping[str, Any]:
    if isinstance(calibration, Mapping):
        return calibration
    if hasattr(calibration, "DESCRIPTOR") and calibration.DESCRIPTOR.name == "OakCalibration":
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(calibration)
    raise InputError(f"calibration: expected an OakCalibration message or a mapping, got {type(calibration).__name__}")


def disparity_model(
    calibration: Any,
    width: int,
    height: int,
    *,
    align_socket: int = 2,
    left_socket: int = 1,
    right_socket: int = 2,
) -> DisparityModel:
    """The :class:`DisparityModel` of a disparity image ``width`` × ``height`` from an OAK calibration.

    calibration: an ``OakCalibration`` message, its protobuf-JSON dict, or a depthai calibration dict.
    align_socket: the camera the disparity is aligned to (2 = right mono, the OAK default); its
    intrinsics are scaled to width × height. The baseline is |translation| between ``left_socket`` and
    ``right_socket`` from the extrinsics (centimetres in the calibration, metres here).
    Raises CalibrationError when a needed camera is not in the calibration.
    """
    from depthcloud.io.calibfiles import parse_depthai

    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    mapping = _calibration_mapping(calibration)
    try:
        calib = parse_depthai(mapping)
        intr = calib.intrinsics(align_socket, width=w, height=h)
        baseline = calib.baseline_m(left_socket, right_socket)
    except (FormatError, InputError, KeyError) as exc:
        raise CalibrationError(f"OAK calibration: {exc}") from exc
    if not (math.isfinite(baseline) and baseline > 0):
        raise CalibrationError(f"OAK calibration: sockets {left_socket}→{right_socket} give baseline {baseline} m")
    return DisparityModel(intr, baseline)


class DisparityModels:
    """The :class:`DisparityModel` of each disparity size a stream brings, built once per size.

    calibration: as for :func:`disparity_model`; ``models(disparity)`` returns the model for that
    (H, W) image; ``new`` is True right after a size was seen for the first time.
    """

    def __init__(self, calibration: Any, *, align_socket: int = 2) -> None:
        self.calibration = calibration
        self.align_socket = align_socket
        self.new = False
        self._models: dict[tuple[int, int], DisparityModel] = {}

    def __call__(self, disparity: np.ndarray) -> DisparityModel:
        h, w = disparity.shape[:2]
        model = self._models.get((w, h))
        self.new = model is None
        if model is None:
            model = self._models[(w, h)] = disparity_model(self.calibration, w, h, align_socket=self.align_socket)
        return model


# -- the client -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OakDisparity:
    """One decoded disparity message: (H, W) uint8 disparity, the frame's sequence number and stamp
    (``OakImageMeta.timestamp``, host-synchronised seconds), the event sequence and the raw payload."""

    disparity: np.ndarray
    sequence_num: int
    stamp: float
    event_sequence: int
    payload: bytes = field(repr=False)


@dataclass
class ClientStats:
    """Counts of what a client has seen: frames decoded, corrupt frames skipped and why (the last few)."""

    received: int = 0
    decoded: int = 0
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        text = f"{self.decoded} frames decoded, {self.corrupt} corrupt skipped"
        if self.problems:
            text += " (" + "; ".join(self.problems[-3:]) + ")"
        return text


class OakClient:
    """An asyncio client of one OAK camera service, on farm-ng-core's ``EventClient``.

    config: the service (see :func:`read_service_config`). timeout_s: how long to wait for the
    service to answer and for each frame. messages: the OAK message classes (default: installed
    farm-ng-amiga, else the project's own schema). Use ``async with`` or call :meth:`close`.
    """

    def __init__(self, config: ServiceConfig, *, timeout_s: float = 5.0, messages: OakMessages | None = None) -> None:
        if not isinstance(config, ServiceConfig):
            raise InputError(f"config: expected ServiceConfig, got {type(config).__name__}")
        try:
            from farm_ng.core.event_client import EventClient
        except ImportError as exc:
            raise MissingDependencyError.for_extra("farm-ng-core", "amiga") from exc
        self.config = config
        self.timeout_s = v.number("timeout_s", timeout_s, positive=True)
        self.messages = messages or oak_messages()
        self.stats = ClientStats()
        self._client = EventClient(config.to_proto())
        self._client.logger.setLevel("ERROR")

    async def __aenter__(self) -> OakClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        channel = self._client.channel
        if channel is not None:
            self._client.channel = None
            self._client.stub = None
            # Bounded: a channel that will not close must not hold up Ctrl-C or the end of a run.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.close(), _CLOSE_TIMEOUT_S)

    def _timeout(self, what: str) -> SourceTimeout:
        return SourceTimeout(
            f"no answer from the OAK service {self.config.name!r} at {self.config.address} within "
            f"{self.timeout_s:g} s ({what}); is the service running?",
            path=self.config.source,
        )

    async def calibration(self) -> Any:
        """Ask the service's ``/calibration`` and return its ``OakCalibration`` message."""
        from google.protobuf.empty_pb2 import Empty

        path = self.config.stream_path("calibration")
        try:
            reply = await asyncio.wait_for(self._client.request_reply(path, Empty()), self.timeout_s)
        except TimeoutError as exc:
            raise self._timeout(f"request {path}") from exc
        except Exception as exc:
            import grpc

            if isinstance(exc, grpc.RpcError):
                raise SourceError(f"the OAK service at {self.config.address} refused {path}: {exc}") from exc
            raise
        kind = dict(p.partition("=")[::2] for p in reply.event.uri.query.split("&")).get("type", "")
        if not kind.endswith("OakCalibration"):
            raise ProtocolError(f"{path}: expected an OakCalibration reply, got {kind or 'nothing'}")
        msg = self.messages.OakCalibration()
        try:
            msg.ParseFromString(reply.payload)
        except Exception as exc:
            raise ProtocolError(f"{path}: the OakCalibration reply does not parse: {exc}") from exc
        return msg

    async def events(self, path: str, *, every_n: int = 1) -> AsyncIterator[tuple[Any, bytes]]:
        """Raw ``(Event, payload bytes)`` pairs published on ``path``, every ``every_n``-th one.

        Waiting longer than ``timeout_s`` for the next one raises SourceTimeout.
        """
        from farm_ng.core.event_service_pb2 import SubscribeRequest
        from farm_ng.core.uri_pb2 import Uri

        n = v.integer("every_n", every_n, low=1)
        request = SubscribeRequest(uri=Uri(path=path, query=f"service_name={self.config.name}"), every_n=n)
        stream = self._client.subscribe(request, decode=False)
        try:
            while True:
                try:
                    event, payload = await asyncio.wait_for(anext(stream), self.timeout_s)
                except TimeoutError as exc:
                    raise self._timeout(f"waiting for {path}") from exc
                self.stats.received += 1
                yield event, bytes(payload)
        finally:
            with contextlib.suppress(TimeoutError):  # bounded, as in close()
                await asyncio.wait_for(stream.aclose(), _CLOSE_TIMEOUT_S)

    def decode(self, event: Any, payload: bytes) -> OakDisparity | None:
        """Decode one disparity message; a corrupt one is counted in ``stats`` and gives None."""
        try:
            frame = self.messages.OakFrame.FromString(payload)
            res = frame.meta.resolution
            disparity = decode_disparity(frame.image_data, width=res.width, height=res.height)
        except Exception as exc:  # protobuf's DecodeError, FormatError: a bad frame must not end the stream
            self.stats.corrupt += 1
            self.stats.problems.append(f"event {event.sequence}: {exc}")
            del self.stats.problems[:-10]
            return None
        self.stats.decoded += 1
        return OakDisparity(disparity, int(frame.meta.sequence_num), float(frame.meta.timestamp),
                            int(event.sequence), payload)

    async def disparity(self, *, every_n: int | None = None) -> AsyncIterator[OakDisparity]:
        """Decoded disparity frames; ``every_n`` defaults to the config's subscription (else 1)."""
        path = self.config.stream_path("disparity")
        n = self.config.every_n("disparity") if every_n is None else every_n
        async for event, payload in self.events(path, every_n=n):
            item = self.decode(event, payload)
            if item is not None:
                yield item

    async def frames(
        self, *, every_n: int | None = None, align_socket: int = 2, frame_id: str | None = None
    ) -> AsyncIterator[Frame]:
        """Depth :class:`~depthcloud.frame.Frame` s (float32 metres) from the disparity stream."""
        models = DisparityModels(await self.calibration(), align_socket=align_socket)
        async for item in self.disparity(every_n=every_n):
            model = models(item.disparity)
            yield Frame(model.depth(item.disparity), model.intrinsics, seq=item.sequence_num, stamp=item.stamp,
                        frame_id=frame_id or self.config.name)



@dataclass(frozen=True)
class RecordSummary:
    """What :func:`record` wrote: records per stream (the calibration counts as one), the file."""

    path: Path
    counts: dict[str, int]


async def record(
    client: OakClient,
    path: str | PathLike[str],
    *,
    frames: int,
    streams: tuple[str, ...] = ("disparity",),
    every_n: int = 1,
    overwrite: bool = False,
) -> RecordSummary:
    """Record a service into a farm-ng event log: its calibration first, then ``streams`` as they arrive.

    frames: stop after this many messages of the first stream. Events and payloads are written as
    received (payloads byte for byte), so the log replays what the service sent.
    """
    from farm_ng.core.event_pb2 import Event
    from farm_ng.core.uri import make_proto_uri

    from .eventlog import EventLogWriter

    n_frames = v.integer("frames", frames, low=1)
    if not streams:
        raise InputError("streams: expected at least one stream, e.g. ('disparity',)")
    calib = await client.calibration()
    counts = dict.fromkeys(streams, 0)
    first_done = asyncio.Event()

    with EventLogWriter(path, overwrite=overwrite) as writer:
        payload = calib.SerializeToString()
        uri = make_proto_uri(client.config.stream_path("calibration"), calib, service_name=client.config.name)
        writer.write(Event(uri=uri, payload_length=len(payload), sequence=0), payload)
        counts["calibration"] = 1

        async def pump(stream: str) -> None:
            async for event, data in client.events(client.config.stream_path(stream), every_n=every_n):
                writer.write(event, data)
                counts[stream] += 1
                if stream == streams[0] and counts[stream] >= n_frames:
                    first_done.set()
                    return

        tasks = [asyncio.ensure_future(pump(s)) for s in streams]
        waiter = asyncio.ensure_future(first_done.wait())
        try:
            done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, waiter]:
                task.cancel()
            await asyncio.gather(*tasks, waiter, return_exceptions=True)
    return RecordSummary(Path(path), counts)
