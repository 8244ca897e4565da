"""MCAP with Foxglove's schemas: what the mcap reader sees (schemas, topics, times), round trips,
other writers' point layouts, and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("foxglove")
pytest.importorskip("mcap_protobuf")

from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

from depthcloud.camera import Intrinsics
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import FormatError, MissingDependencyError, OutputExistsError
from depthcloud.io import read_cloud, write_cloud
from depthcloud.io.mcap import encode_mcap, join_mcap, read_mcap, read_mcap_clouds, write_mcap


def decoded(data: bytes) -> list[tuple[str, str, int, object]]:
    reader = make_reader(io.BytesIO(data), decoder_factories=[DecoderFactory()])
    return [(s.name, c.topic, m.log_time, p) for s, c, m, p in reader.iter_decoded_messages()]


def test_schemas_topics_and_times(rng):
    n = 50
    cloud = PointCloud(rng.uniform(-1, 1, (n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3), dtype=np.uint8),
                       frame="zup", stamp=12.5)
    intr = Intrinsics(500.0, 480.0, 319.5, 239.5, 640, 480)
    msgs = decoded(encode_mcap(cloud, color=np.zeros((480, 640, 3), np.uint8),
                               depth=np.ones((480, 640), np.float32), intrinsics=intr))
    by_topic = {t: (s, lt, p) for s, t, lt, p in msgs if t != "/tf"}
    assert by_topic["/depthcloud/points"][0] == "foxglove.PointCloud"
    assert by_topic["/depthcloud/color"][0] == "foxglove.RawImage"
    assert by_topic["/depthcloud/depth"][0] == "foxglove.RawImage"
    assert by_topic["/depthcloud/calibration"][0] == "foxglove.CameraCalibration"
    assert {lt for _, _, lt, _ in msgs} == {12_500_000_000}
    pc = by_topic["/depthcloud/points"][2]
    assert pc.frame_id == "zup" and len(pc.data) == n * pc.point_stride
    assert [f.name for f in pc.fields] == ["x", "y", "z", "red", "green", "blue", "alpha"]
    cal = by_topic["/depthcloud/calibration"][2]
    assert list(cal.K) == pytest.approx([500, 0, 319.5, 0, 480, 239.5, 0, 0, 1])
    assert by_topic["/depthcloud/color"][2].encoding == "rgb8" and by_topic["/depthcloud/depth"][2].encoding == "32FC1"


def test_the_transform_maps_optical_into_zup():
    msgs = decoded(encode_mcap(PointCloud(np.zeros((1, 3), np.float32))))
    tfs = [p for s, t, _, p in msgs if s == "foxglove.FrameTransform"]
    assert [(tf.parent_frame_id, tf.child_frame_id) for tf in tfs] == [("zup", "optical")]
    from scipy.spatial.transform import Rotation

    q = tfs[0].rotation
    R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    np.testing.assert_allclose(R, FRAMES["zup"], atol=1e-12)  # p_zup = R · p_optical: forward → +x


@pytest.mark.parametrize("colors, normals", [(True, True), (False, False), (True, False)])
def test_round_trip_is_exact(tmp_path, rng, colors, normals):
    n = 200
    cloud = PointCloud(rng.standard_normal((n, 3)).astype(np.float32),
                       rng.integers(0, 256, (n, 3), dtype=np.uint8) if colors else None,
                       rng.standard_normal((n, 3)).astype(np.float32) if normals else None,
                       frame="opengl", stamp=4.25)
    back = read_cloud(write_cloud(tmp_path / "c.mcap", cloud))
    assert back == cloud and back.stamp == 4.25


def test_same_cloud_same_bytes():
    cloud = PointCloud(np.arange(30, dtype=np.float32).reshape(10, 3), stamp=1.0)
    assert encode_mcap(cloud) == encode_mcap(cloud)


def test_other_layouts_float64_points_and_float_colours(tmp_path):
    import foxglove
    from foxglove import messages as m
    from foxglove.channels import PointCloudChannel

    rec = np.zeros(3, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("pad", "u1"), ("red", "<f4"),
                             ("green", "<f4"), ("blue", "<f4")])
    rec["x"], rec["y"], rec["z"] = [1, 2, np.nan], [3, 4, 5], [6, 7, 8]
    rec["red"] = [1.0, 0.0, 0.5]
    T = m.PackedElementFieldNumericType
    fields = [m.PackedElementField(name=n, offset=rec.dtype.fields[n][1], type=T.Float64 if n in "xyz" else T.Float32)
              for n in ("x", "y", "z", "red", "green", "blue")]
    ctx = foxglove.Context()
    path = tmp_path / "other.mcap"
    with foxglove.open_mcap(path, context=ctx):
        ch = PointCloudChannel("/lidar", context=ctx)
        for t in (2, 1):  # logged out of order: read back in log-time order
            ch.log(m.PointCloud(timestamp=m.Timestamp(sec=t, nsec=0), frame_id="lidar", point_stride=rec.dtype.itemsize,
                                fields=fields, data=rec.tobytes()), log_time=t * 10**9)
    clouds = list(read_mcap_clouds(path))
    assert [c.stamp for c in clouds] == [1.0, 2.0]
    assert clouds[0].frame == "lidar" and len(clouds[0]) == 2  # the NaN point is dropped
    assert clouds[0].colors[:, 0].tolist() == [255, 0]
    with pytest.raises(FormatError, match=r"other\.mcap: holds 2 foxglove\.PointCloud messages; expected one"):
        read_mcap(path)


def test_bad_files(tmp_path):
    (tmp_path / "junk.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(40))
    with pytest.raises(FormatError, match=r"junk\.mcap: not a readable MCAP file"):
        read_cloud(tmp_path / "junk.mcap")
    (tmp_path / "text.mcap").write_text("hello")
    with pytest.raises(FormatError, match=r"text\.mcap: not a readable MCAP file"):
        read_cloud(tmp_path / "text.mcap")


def test_refuses_to_overwrite_and_missing_sdk_names_the_extra(tmp_path, monkeypatch):
    import sys

    cloud = PointCloud(np.zeros((2, 3), np.float32))
    path = write_mcap(tmp_path / "c.mcap", cloud)
    with pytest.raises(OutputExistsError):
        write_mcap(path, cloud)
    monkeypatch.setitem(sys.modules, "foxglove", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'depthcloud\[export\]'"):
        encode_mcap(cloud)


def test_join_makes_one_recording_in_the_given_order(tmp_path, rng):
    parts = []
    for i, stamp in enumerate([3.0, 1.0, 2.0]):
        cloud = PointCloud(rng.standard_normal((10 + i, 3)).astype(np.float32), stamp=stamp)
        parts.append(write_mcap(tmp_path / f"{i}.mcap", cloud, color=np.zeros((2, 2, 3), np.uint8)))
    out, n = join_mcap(parts, tmp_path / "all.mcap")
    assert n == 9  # per file: the transform, the cloud, the colour image
    assert [len(c) for c in read_mcap_clouds(out)] == [11, 12, 10]  # read back in log-time order
    reader = make_reader(io.BytesIO(out.read_bytes()))
    summary = reader.get_summary()
    assert len(summary.schemas) == 3 and len(summary.channels) == 3  # written once, not per file
    with pytest.raises(OutputExistsError):
        join_mcap(parts, out)
    (tmp_path / "bad.mcap").write_bytes(b"nope")
    with pytest.raises(FormatError, match=r"bad\.mcap: not a readable MCAP file"):
        join_mcap([parts[0], tmp_path / "bad.mcap"], tmp_path / "x.mcap")
    assert not (tmp_path / "x.mcap").exists() and not list(tmp_path.glob(".*.tmp"))
