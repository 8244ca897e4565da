"""MCAP files with Foxglove's schemas: clouds (and, from sources, their images and calibration).

Written with Foxglove's own SDK (``foxglove-sdk``: its MCAP writer and protobuf schemas), one
private SDK context per file, so a file opens in Foxglove as it is:

========================  ===========================  =========================================
topic                     schema                       what
========================  ===========================  =========================================
``/depthcloud/points``    ``foxglove.PointCloud``      x y z float32 (+ red green blue alpha uint8,
                                                       + nx ny nz float32), frame_id = the cloud's
                                                       frame name (``optical``, ``zup``, …)
``/depthcloud/color``     ``foxglove.RawImage``        rgb8, frame_id ``optical`` (when given)
``/depthcloud/depth``     ``foxglove.RawImage``        32FC1 metres, frame_id ``optical`` (when given)
``/depthcloud/calibration`` ``foxglove.CameraCalibration`` K, P, plumb_bob/kannala_brandt D (when given)
``/tf``                   ``foxglove.FrameTransform``  ``zup`` → ``optical`` (and → ``opengl``): the
                                                       named frames of docs/conventions.md
========================  ===========================  =========================================

Log and publish times are the cloud's stamp in nanoseconds. :func:`join_mcap` copies the messages of
several files into one recording (the exporter's per-source file). Reading uses the ``mcap`` reader with
``mcap-protobuf-support``'s decoder and takes every ``foxglove.PointCloud`` message (any topic, any
writer) whose fields include float32 x y z. This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud.camera import Intrinsics
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import FormatError, InputError, MissingDependencyError
from depthcloud.io._files import PathArg, read_input, write_atomic

__all__ = ["POINTS_TOPIC", "encode_mcap", "join_mcap", "read_mcap", "read_mcap_clouds", "topics", "write_mcap"]

POINTS_TOPIC = "/depthcloud/points"
COLOR_TOPIC = "/depthcloud/color"
DEPTH_TOPIC = "/depthcloud/depth"
CALIBRATION_TOPIC = "/depthcloud/calibration"
TF_TOPIC = "/tf"
_ROOT = "zup"  # the parent of the transforms: a body frame, z up, as Foxglove's 3D panel expects


def _foxglove() -> Any:
    try:
        import foxglove
        import foxglove.channels
        import foxglove.messages
    except ImportError as exc:
        raise MissingDependencyError.for_extra("foxglove-sdk", "export") from exc
    return foxglove


def _reader() -> tuple[Any, Any]:
    try:
        from mcap.reader import make_reader
        from mcap_protobuf.decoder import DecoderFactory
    except ImportError as exc:
        raise MissingDependencyError.for_extra("mcap and mcap-protobuf-support", "export") from exc
    return make_reader, DecoderFactory


def _quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return float(x), float(y), float(z), float(w)


def _fields(cloud: PointCloud) -> tuple[list[tuple[str, int, str]], np.ndarray]:
    """(name, offset, type) of each field and the packed records."""
    layout: list[tuple[str, str, np.ndarray]] = [(n, "<f4", cloud.points[:, i]) for i, n in enumerate("xyz")]
    if cloud.colors is not None:
        layout += [(n, "u1", cloud.colors[:, i]) for i, n in enumerate(("red", "green", "blue"))]
        layout.append(("alpha", "u1", np.full(len(cloud), 255, np.uint8)))
    if cloud.normals is not None:
        layout += [(n, "<f4", cloud.normals[:, i]) for i, n in enumerate(("nx", "ny", "nz"))]
    rec = np.empty(len(cloud), dtype=np.dtype([(n, t) for n, t, _ in layout]))
    for n, _, col in layout:
        rec[n] = col
    offsets = {n: rec.dtype.fields[n][1] for n, _, _ in layout} if rec.dtype.fields else {}
    fields = [(n, offsets[n], "Float32" if t == "<f4" else "Uint8") for n, t, _ in layout]
    return fields, rec


def encode_mcap(
    cloud: PointCloud,
    *,
    color: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    intrinsics: Intrinsics | None = None,
) -> bytes:
    """The bytes of an MCAP file holding ``cloud`` (see the module docstring for topics and schemas).

    color: (H, W, 3) uint8 RGB and depth: (H, W) float32 metres of the camera that saw the cloud;
    intrinsics: that camera's (its calibration is written when given). All optional.
    """
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    fg = _foxglove()
    m, ch = fg.messages, fg.channels
    stamp = 0.0 if cloud.stamp is None else max(0.0, float(cloud.stamp))
    ns = round(stamp * 1e9)
    ts = m.Timestamp(sec=ns // 10**9, nsec=ns % 10**9)
    ctx = fg.Context()
    buf = io.BytesIO()
    writer = fg.open_mcap(buf, context=ctx)
    try:
        frames = [f for f in ("optical", "opengl") if f == "optical" or f == cloud.frame]
        tf = ch.FrameTransformChannel(TF_TOPIC, context=ctx)
        for child in frames:
            qx, qy, qz, qw = _quaternion(FRAMES[_ROOT] @ FRAMES[child].T)
            tf.log(m.FrameTransform(timestamp=ts, parent_frame_id=_ROOT, child_frame_id=child,
                                    translation=m.Vector3(x=0.0, y=0.0, z=0.0),
                                    rotation=m.Quaternion(x=qx, y=qy, z=qz, w=qw)), log_time=ns)
        fields, rec = _fields(cloud)
        kinds = m.PackedElementFieldNumericType
        msg = m.PointCloud(
            timestamp=ts, frame_id=cloud.frame,
            pose=m.Pose(position=m.Vector3(x=0.0, y=0.0, z=0.0), orientation=m.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
            point_stride=rec.dtype.itemsize,
            fields=[m.PackedElementField(name=n, offset=o, type=getattr(kinds, t)) for n, o, t in fields],
            data=rec.tobytes(),
        )
        ch.PointCloudChannel(POINTS_TOPIC, context=ctx).log(msg, log_time=ns)
        if color is not None:
            img = np.ascontiguousarray(color, dtype=np.uint8)
            if img.ndim != 3 or img.shape[2] != 3:
                raise InputError(f"color: expected (H, W, 3) uint8 RGB, got shape {img.shape}")
            ch.RawImageChannel(COLOR_TOPIC, context=ctx).log(m.RawImage(
                timestamp=ts, frame_id="optical", width=img.shape[1], height=img.shape[0], encoding="rgb8",
                step=3 * img.shape[1], data=img.tobytes()), log_time=ns)
        if depth is not None:
            d = np.ascontiguousarray(depth, dtype="<f4")
            if d.ndim != 2:
                raise InputError(f"depth: expected (H, W) float32 metres, got shape {d.shape}")
            ch.RawImageChannel(DEPTH_TOPIC, context=ctx).log(m.RawImage(
                timestamp=ts, frame_id="optical", width=d.shape[1], height=d.shape[0], encoding="32FC1",
                step=4 * d.shape[1], data=d.tobytes()), log_time=ns)
        if intrinsics is not None:
            ch.CameraCalibrationChannel(CALIBRATION_TOPIC, context=ctx).log(_calibration(m, intrinsics, ts), log_time=ns)
    finally:
        writer.close()
    return buf.getvalue()


def _calibration(m: Any, intr: Intrinsics, ts: Any) -> Any:
    K = intr.K
    P = np.zeros((3, 4))
    P[:3, :3] = K
    model = {"none": "plumb_bob", "opencv": "plumb_bob" if len(intr.dist) <= 5 else "rational_polynomial",
             "fisheye": "kannala_brandt"}[intr.model]
    dist = list(intr.dist) if intr.dist else [0.0] * 5
    return m.CameraCalibration(timestamp=ts, frame_id="optical", width=intr.width, height=intr.height,
                               distortion_model=model, D=[float(x) for x in dist[:8]],
                               K=[float(x) for x in K.ravel()], R=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                               P=[float(x) for x in P.ravel()])


def write_mcap(
    path: PathArg,
    cloud: PointCloud,
    *,
    overwrite: bool = False,
    color: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    intrinsics: Intrinsics | None = None,
) -> Path:
    """Write :func:`encode_mcap` of the arguments to ``path`` (temporary file + rename)."""
    return write_atomic(path, encode_mcap(cloud, color=color, depth=depth, intrinsics=intrinsics),
                        overwrite=overwrite)


def _cloud_of(proto: Any, name: str) -> PointCloud:
    types = {"FLOAT32": "<f4", "FLOAT64": "<f8", "UINT8": "u1", "INT8": "i1", "UINT16": "<u2", "INT16": "<i2",
             "UINT32": "<u4", "INT32": "<i4"}
    stride = int(proto.point_stride)
    data = bytes(proto.data)
    if stride <= 0 or len(data) % stride:
        raise FormatError(f"a PointCloud's data ({len(data)} bytes) is not a whole number of {stride}-byte points",
                          path=name)
    fields: dict[str, tuple[int, str]] = {}
    for f in proto.fields:
        kind = f.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[f.type].name
        if kind not in types:
            raise FormatError(f"field {f.name!r} has an unknown numeric type {kind}", path=name)
        if f.offset + np.dtype(types[kind]).itemsize > stride:
            raise FormatError(f"field {f.name!r} ends beyond the point stride {stride}", path=name)
        fields[f.name] = (int(f.offset), types[kind])
    if not {"x", "y", "z"} <= set(fields):
        raise FormatError(f"a PointCloud without x y z fields (has {', '.join(fields) or 'none'})", path=name)
    n = len(data) // stride
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, stride)

    def column(key: str) -> np.ndarray:
        off, t = fields[key]
        size = np.dtype(t).itemsize
        return np.ascontiguousarray(raw[:, off:off + size]).view(t).reshape(n)

    points = np.stack([column(k) for k in "xyz"], axis=1).astype(np.float32)
    colors = None
    if {"red", "green", "blue"} <= set(fields):
        colors = np.stack([column(k) for k in ("red", "green", "blue")], axis=1)
        if colors.dtype != np.uint8:  # float colours in 0..1, as some writers send
            colors = np.clip(np.rint(colors.astype(np.float64) * (255 if colors.dtype.kind == "f" else 1)), 0, 255)
        colors = colors.astype(np.uint8)
    normals = None
    if {"nx", "ny", "nz"} <= set(fields):
        normals = np.stack([column(k) for k in ("nx", "ny", "nz")], axis=1).astype(np.float32)
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        points = points[finite]
        colors = None if colors is None else colors[finite]
        normals = None if normals is None else normals[finite]
    stamp = float(proto.timestamp.seconds) + float(proto.timestamp.nanos) * 1e-9
    return PointCloud(points, colors, normals, frame=str(proto.frame_id) or "optical", stamp=stamp)


def read_mcap_clouds(path: PathArg) -> Iterator[PointCloud]:
    """Every ``foxglove.PointCloud`` message of an MCAP file as a PointCloud, in log-time order."""
    make_reader, DecoderFactory = _reader()
    name = Path(path).name
    data = read_input(path)
    try:
        reader = make_reader(io.BytesIO(data), decoder_factories=[DecoderFactory()])
        for schema, _channel, _message, proto in reader.iter_decoded_messages(log_time_order=True):
            if schema is not None and schema.name == "foxglove.PointCloud":
                yield _cloud_of(proto, name)
    except FormatError:
        raise
    except Exception as exc:  # the mcap reader raises its own (and struct/protobuf) errors for bad bytes
        raise FormatError(f"not a readable MCAP file ({type(exc).__name__}: {exc})", path=name) from exc


def read_mcap(path: PathArg) -> PointCloud:
    """The one point cloud of an MCAP file; a file with none or several is a FormatError
    (read several with :func:`read_mcap_clouds`)."""
    clouds = list(read_mcap_clouds(path))
    if len(clouds) != 1:
        raise FormatError(f"holds {len(clouds)} foxglove.PointCloud messages; expected one "
                          "(read_mcap_clouds reads them all)", path=Path(path).name)
    return clouds[0]


def topics(path: PathArg) -> list[tuple[str, str, int]]:
    """(topic, schema name, message count) of every channel of an MCAP file, from its summary."""
    make_reader, _ = _reader()
    name = Path(path).name
    try:
        summary = make_reader(io.BytesIO(read_input(path))).get_summary()
    except Exception as exc:  # the mcap reader's own errors for bad bytes
        raise FormatError(f"not a readable MCAP file ({type(exc).__name__}: {exc})", path=name) from exc
    if summary is None:
        raise FormatError("not a readable MCAP file (no summary section)", path=name)
    counts = summary.statistics.channel_message_counts if summary.statistics else {}
    out = []
    for cid, ch in sorted(summary.channels.items()):
        schema = summary.schemas.get(ch.schema_id)
        out.append((ch.topic, schema.name if schema is not None else "?", int(counts.get(cid, 0))))
    return out


def join_mcap(paths: Iterable[PathArg], out: PathArg, *, overwrite: bool = False) -> tuple[Path, int]:
    """One MCAP recording holding every message of ``paths``, in the order given (each file's messages
    in log-time order), copied as they are (no decoding); schemas and channels that are the same in
    several files are written once. Streams file by file (memory does not grow with the count) into a
    temporary file renamed into place. Returns the path and the number of messages.
    """
    make_reader, _ = _reader()
    from mcap.writer import Writer

    target = Path(out)
    if target.exists() and not overwrite:
        from depthcloud.errors import OutputExistsError

        raise OutputExistsError("exists; pass overwrite=True (--overwrite) to replace it", path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp"
    schemas: dict[tuple[str, str, bytes], int] = {}
    channels: dict[tuple[str, str, int], int] = {}
    count = 0
    try:
        with open(tmp, "wb") as fh:
            writer = Writer(fh)
            writer.start(profile="", library="depthcloud")
            for path in paths:
                name = Path(path).name
                try:
                    with open(path, "rb") as src:
                        for schema, channel, message in make_reader(src).iter_messages(log_time_order=True):
                            sid = 0
                            if schema is not None:
                                skey = (schema.name, schema.encoding, bytes(schema.data))
                                sid = schemas.get(skey) or schemas.setdefault(
                                    skey, writer.register_schema(schema.name, schema.encoding, bytes(schema.data)))
                            ckey = (channel.topic, channel.message_encoding, sid)
                            cid = channels.get(ckey)
                            if cid is None:
                                cid = channels[ckey] = writer.register_channel(channel.topic, channel.message_encoding,
                                                                               sid)
                            writer.add_message(cid, message.log_time, bytes(message.data), message.publish_time,
                                               message.sequence)
                            count += 1
                except OSError as exc:
                    raise InputError(f"cannot read: {exc.strerror or exc}", path=name) from exc
                except InputError:
                    raise
                except Exception as exc:  # the mcap reader's own errors for bad bytes
                    raise FormatError(f"not a readable MCAP file ({type(exc).__name__}: {exc})", path=name) from exc
            writer.finish()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, count
