"""farm-ng event logs: our reader and writer against farm-ng-core's, and cut files."""

from __future__ import annotations

import struct

import pytest

from depthcloud.amiga.eventlog import EventLogReader, EventLogWriter, read_event_log
from depthcloud.amiga.messages import oak_messages
from depthcloud.errors import FormatError, InputError, OutputExistsError

Event = pytest.importorskip("farm_ng.core.event_pb2").Event
make_proto_uri = pytest.importorskip("farm_ng.core.uri").make_proto_uri


def _records(n: int, *, service: str = "oak0", path: str = "/disparity") -> list[tuple[object, bytes]]:
    msgs = oak_messages()
    out = []
    for i in range(n):
        frame = msgs.OakFrame(image_data=bytes([i % 256]) * (10 + i))
        frame.meta.sequence_num = i
        payload = frame.SerializeToString()
        event = Event(uri=make_proto_uri(path, frame, service_name=service), payload_length=len(payload), sequence=i)
        out.append((event, payload))
    return out


def _write(path, records):
    with EventLogWriter(path) as w:
        for event, payload in records:
            w.write(event, payload)
    return path


def test_round_trip_keeps_events_and_payloads(tmp_path):
    recs = _records(5)
    _write(tmp_path / "a.bin", recs)
    got, problem = read_event_log(tmp_path / "a.bin")
    assert problem is None
    assert [(r.event, r.payload) for r in got] == recs
    assert got[0].offset == 0
    assert got[2].path == "/disparity" and got[2].service_name == "oak0"
    assert got[2].type_name == "farm_ng.oak.proto.OakFrame"


def test_empty_log_is_complete(tmp_path):
    (tmp_path / "e.bin").write_bytes(b"")
    assert read_event_log(tmp_path / "e.bin") == ([], None)


def test_farm_ng_core_reads_what_we_write(tmp_path):
    from farm_ng.core.events_file_reader import EventsFileReader

    recs = _records(4, service="oak/1")
    _write(tmp_path / "ours.bin", recs)
    with EventsFileReader(tmp_path / "ours.bin") as reader:
        index = reader.get_index()
        assert len(index) == 4
        # farm-ng-core prefixes the service name: AmigaOS 2.3's "oak/1/disparity".
        assert index[0].event.uri.path == "oak/1/disparity"
        msg = reader.read_message(index[3])
    assert msg.SerializeToString() == recs[3][1]


def test_we_read_what_farm_ng_core_writes(tmp_path):
    from farm_ng.core.events_file_writer import EventsFileWriter

    recs = _records(3)
    with EventsFileWriter(tmp_path / "theirs") as writer:
        for event, payload in recs:
            writer.write_event_payload(event, payload)
        name = writer.file_name
    got, problem = read_event_log(name)
    assert problem is None
    assert [r.payload for r in got] == [p for _, p in recs]
    assert [r.event.sequence for r in got] == [0, 1, 2]


def test_writer_fixes_a_wrong_payload_length(tmp_path):
    event, payload = _records(1)[0]
    event.payload_length = 3
    _write(tmp_path / "f.bin", [(event, payload)])
    (rec,), problem = read_event_log(tmp_path / "f.bin")
    assert problem is None and rec.payload == payload and rec.event.payload_length == len(payload)


def test_every_cut_reads_the_whole_records_and_reports_the_rest(tmp_path):
    recs = _records(3)
    full = _write(tmp_path / "full.bin", recs).read_bytes()
    sizes = [4 + len(e.SerializeToString()) + len(p) for e, p in recs]
    bounds = [sum(sizes[:i]) for i in range(4)]
    for cut in range(len(full)):
        p = tmp_path / "cut.bin"
        p.write_bytes(full[:cut])
        reader = EventLogReader(p)
        got = list(reader)
        whole = max(i for i, b in enumerate(bounds) if b <= cut)
        assert len(got) == whole == reader.count
        assert [r.payload for r in got] == [pl for _, pl in recs[:whole]]
        if cut in bounds:
            assert reader.complete and reader.trailing_bytes == 0
        else:
            assert not reader.complete
            assert reader.trailing_bytes == cut - bounds[whole]
            assert f"truncated at byte {bounds[whole]} of {cut}" in reader.problem
            assert f"{whole} whole records read" in reader.problem


def test_problem_says_what_was_cut(tmp_path):
    recs = _records(2)
    full = _write(tmp_path / "full.bin", recs).read_bytes()
    size0 = 4 + len(recs[0][0].SerializeToString()) + len(recs[0][1])
    p = tmp_path / "c.bin"
    p.write_bytes(full[: size0 + 2])
    _, problem = read_event_log(p)
    assert "record 1: the length prefix is cut (2 of 4 bytes)" in problem
    p.write_bytes(full[:-1])
    _, problem = read_event_log(p)
    assert "record 1 (/disparity): the payload is cut" in problem
    with pytest.raises(FormatError, match=r"c\.bin: truncated at byte"):
        read_event_log(p, strict=True)


def test_not_an_event_log(tmp_path):
    p = tmp_path / "junk.bin"
    p.write_bytes(struct.pack("<I", 0xFFFFFFF0) + b"x" * 20)
    got, problem = read_event_log(p)
    assert got == [] and "not plausible" in problem
    p.write_bytes(struct.pack("<I", 4) + b"\xff\xff\xff\xff")
    got, problem = read_event_log(p)
    assert got == [] and "does not parse" in problem


def test_reader_and_writer_refuse_bad_paths(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        EventLogReader(tmp_path / "none.bin")
    with pytest.raises(InputError, match="is a folder"):
        EventLogReader(tmp_path)
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(OutputExistsError, match="exists"):
        EventLogWriter(tmp_path / "x.bin")
    with EventLogWriter(tmp_path / "x.bin", overwrite=True) as w:
        with pytest.raises(InputError, match=r"expected farm_ng\.core Event"):
            w.write(object(), b"")
        with pytest.raises(InputError, match="expected bytes"):
            w.write(Event(), "text")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not open"):
        w.write(Event(), b"")
