"""The bounded on-disk spool: order, durability across reopen, bounds, protection of in-flight
records, corruption and disk-full handling."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framesift.errors import SinkError
from framesift.sinks.spool import Spool


def spool(path: Path, **kw: int) -> Spool:
    s = Spool(path, max_events=kw.get("max_events", 1000), max_bytes=kw.get("max_bytes", 1 << 20))
    s.open()
    return s


def test_fifo_order_and_remove(tmp_path: Path) -> None:
    s = spool(tmp_path)
    ids = [s.append("t/a", f"m{i}".encode(), 1, False)[0] for i in range(5)]
    assert ids == sorted(ids) and len(s) == 5
    assert [r.payload for r in s.head(3)] == [b"m0", b"m1", b"m2"]
    assert [r.payload for r in s.head(10, after=ids[2])] == [b"m3", b"m4"]
    assert s.remove([ids[0], ids[1], 99999]) == 2
    assert [r.payload for r in s.head(10)] == [b"m2", b"m3", b"m4"]
    assert s.count_after(ids[3]) == 1
    s.close()


def test_records_survive_reopen_and_a_killed_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal
        from framesift.sinks.spool import Spool
        s = Spool({str(tmp_path)!r}, max_events=100, max_bytes=1 << 20)
        s.open()
        for i in range(7):
            s.append("t", str(i).encode(), 1, i == 3)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert proc.returncode == -9
    s = spool(tmp_path)
    recs = s.head(100)
    assert [r.payload for r in recs] == [str(i).encode() for i in range(7)]
    assert [r.retain for r in recs] == [i == 3 for i in range(7)]
    assert len(s) == 7 and s.size_bytes == sum(r.size for r in recs)
    nid, _ = s.append("t", b"7", 1, False)
    assert nid > recs[-1].id  # ids keep growing after reopen
    s.close()


def test_event_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    s = spool(tmp_path, max_events=4)
    dropped = [s.append("t", str(i).encode(), 1, False)[1] for i in range(10)]
    assert sum(dropped) == 6 and s.dropped == 6 and len(s) == 4
    assert [r.payload for r in s.head(10)] == [b"6", b"7", b"8", b"9"]
    s.close()


def test_byte_bound_drops_oldest(tmp_path: Path) -> None:
    s = spool(tmp_path, max_bytes=1000)
    for i in range(10):
        s.append("t", bytes([65 + i]) * 299, 1, False)  # 300 bytes each with the topic
    assert len(s) == 3 and s.size_bytes == 900 and s.dropped == 7
    assert [r.payload[:1] for r in s.head(10)] == [b"H", b"I", b"J"]
    rid, dropped = s.append("t", b"x" * 5000, 1, False)  # alone over the bound: refused, counted
    assert rid == 0 and dropped == 1 and len(s) == 3
    s.close()


def test_in_flight_records_are_not_dropped(tmp_path: Path) -> None:
    s = spool(tmp_path, max_events=3)
    ids = [s.append("t", str(i).encode(), 1, False)[0] for i in range(3)]
    # records up to ids[1] were handed to the broker: the oldest *unsent* record goes instead
    s.append("t", b"3", 1, False, keep_upto=ids[1])
    assert [r.payload for r in s.head(10)] == [b"0", b"1", b"3"]
    # nothing unsent left but the new one: the new one is dropped
    rid, dropped = s.append("t", b"4", 1, False, keep_upto=s.head(10)[-1].id)
    assert rid == 0 and dropped == 1
    assert [r.payload for r in s.head(10)] == [b"0", b"1", b"3"] and s.dropped == 2
    s.close()


def test_corrupt_spool_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "spool.sqlite").write_bytes(b"this is not a database" * 100)
    s = spool(tmp_path)
    s.append("t", b"ok", 1, False)
    assert [r.payload for r in s.head(1)] == [b"ok"]
    s.close()
    assert any(p.name.startswith("spool.corrupt-") for p in tmp_path.iterdir())
    assert "unreadable" in caplog.text


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="spool_dir"):
        Spool(blocker / "spool", max_events=1, max_bytes=1).open()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_raises_a_transient_sink_error(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=False).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        s = Spool(mnt, max_events=1_000_000, max_bytes=1 << 30)
        s.open()
        with pytest.raises(SinkError, match="free disk space") as info:
            for _ in range(1000):
                s.append("t", os.urandom(4096), 1, False)
        assert info.value.transient
        assert len(s) == len(s.head(10_000))  # the bookkeeping matches what is on disk
        s.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_spool_file_is_a_plain_sqlite_database(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.append("framesift/cam/x", b"{}", 1, True)
    s.close()
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        assert db.execute("SELECT topic, retain FROM records").fetchall() == [("framesift/cam/x", 1)]
