"""Container records on disk: appended as JSON lines, the last complete line
wins, torn writes are cut off, and the file is compacted as it grows."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec
from nodeagent.supervisor import records
from nodeagent.supervisor.records import Record


def record(tmp_path: Path, cid: str = "a" * 64) -> Record:
    spec = ContainerSpec(id=cid, name="c1", hostname="c1", bundle_dir=str(tmp_path / "containers" / cid),
                         rootfs=RootfsSpec(["/x"]), process=ProcessSpec(args=["/bin/true"]))
    return Record(spec=spec, image="busybox", image_id="sha256:" + "b" * 64)


def test_every_change_appends_and_the_last_line_is_the_record(tmp_path: Path) -> None:
    rec = record(tmp_path)
    records.save(rec)
    rec.state, rec.pid = records.RUNNING, 42
    records.save(rec)
    path = rec.bundle / "record.json"
    assert len(path.read_bytes().splitlines()) == 2
    [loaded] = records.load_all(tmp_path / "containers")
    assert (loaded.state, loaded.pid, loaded.spec) == (records.RUNNING, 42, rec.spec)


def test_a_torn_last_line_is_skipped_and_cut_off(tmp_path: Path) -> None:
    rec = record(tmp_path)
    records.save(rec)
    rec.state = records.RUNNING
    records.save(rec)
    path = rec.bundle / "record.json"
    full = path.read_bytes()
    path.write_bytes(full + full.splitlines()[-1][:100])  # a crash in the third write
    [loaded] = records.load_all(tmp_path / "containers")
    assert loaded.state == records.RUNNING
    assert path.read_bytes() == full.splitlines(keepends=True)[-1]
    rec.state = records.EXITED  # appending after the cut starts a clean line
    records.save(rec)
    assert records.load_all(tmp_path / "containers")[0].state == records.EXITED


def test_a_file_with_no_complete_record_is_skipped(tmp_path: Path) -> None:
    rec = record(tmp_path)
    rec.bundle.mkdir(parents=True)
    (rec.bundle / "record.json").write_bytes(b'{"spec": {"id"')
    good = record(tmp_path, "c" * 64)
    records.save(good)
    assert [r.id for r in records.load_all(tmp_path / "containers")] == [good.id]


def test_the_file_is_compacted_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "COMPACT_BYTES", 10_000)
    rec = record(tmp_path)
    path = rec.bundle / "record.json"
    sizes = []
    for n in range(30):
        rec.restart_count = n
        records.save(rec)
        sizes.append(path.stat().st_size)
    line = len(path.read_bytes().splitlines()[-1]) + 1
    assert max(sizes) <= 10_000 + line
    assert any(after == line < before for before, after in itertools.pairwise(sizes))  # rewritten
    assert json.loads(path.read_bytes().splitlines()[-1])["restart_count"] == 29
    assert records.load_all(tmp_path / "containers")[0].restart_count == 29
    assert not (rec.bundle / "record.json.tmp").exists()


def test_a_record_without_its_newline_is_whole(tmp_path: Path) -> None:
    """A single JSON document (as written before records were appended), or a
    write cut off just before its newline, is a complete record."""
    rec = record(tmp_path)
    rec.bundle.mkdir(parents=True)
    path = rec.bundle / "record.json"
    path.write_text(json.dumps(rec.to_dict()))
    [loaded] = records.load_all(tmp_path / "containers")
    assert loaded.spec == rec.spec
    assert path.read_bytes().endswith(b"\n")
    rec.state = records.RUNNING
    records.save(rec)
    assert records.load_all(tmp_path / "containers")[0].state == records.RUNNING
