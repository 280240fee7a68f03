"""A store is input: a tampered, truncated, garbage or locked index, and hostile source ids, never make
framesift touch files outside the store, write a dangerous link, or print a traceback."""

from __future__ import annotations

import hashlib
import html.parser
import json
import logging
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from framesift.errors import EXIT_INPUT, SinkError, SourceError
from framesift.store import connection
from framesift.store.export import export_dataset
from framesift.store.index import DELETING, INDEX_NAME, OK, PENDING, FrameStore
from framesift.store.search import Hit, format_hits, search, write_html
from tests.store.helpers import FakeEmbedder, class_image

T0 = 1_767_225_600.0


def fill(root: Path, n: int = 4) -> FakeEmbedder:
    emb = FakeEmbedder()
    with FrameStore(root, format="png") as store:
        for i in range(n):
            img = class_image(i, (24, 32))
            store.add(id=f"f{i}", source="cam", image=img, wallclock=T0 + i, frame_index=i,
                      embedding=emb.embed_images([img])[0], model=emb.name)  # fmt: skip
    return emb


def victims(tmp_path: Path, root: Path) -> dict[str, Path]:
    """Files outside the store, and index paths that reach them (absolute, ``..``, a symlink)."""
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    files = {}
    for name in ("abs", "dotdot", "link"):
        f = outside / f"{name}.png"
        f.write_bytes(b"precious " + name.encode())
        files[name] = f
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return {
        str(files["abs"]): files["abs"],
        f"../{outside.name}/dotdot.png": files["dotdot"],
        "escape/link.png": files["link"],
    }


def tamper(root: Path, rows: dict[str, Path], *, status: int, wallclock: float = T0 - 10_000) -> None:
    """Index rows pointing at ``rows``' keys, with the real sha256 and size of the target files."""
    db = sqlite3.connect(root / INDEX_NAME)
    for i, (rel, target) in enumerate(rows.items()):
        data = target.read_bytes()
        db.execute(
            "INSERT INTO frames VALUES (?, 'cam', ?, 0, 0, '1/1', 0, 'novel', '{}', ?, ?, ?, 32, 24, NULL, 0, NULL, ?)",
            (f"evil{i}", wallclock, rel, len(data), hashlib.sha256(data).hexdigest(), status),
        )
    db.commit()
    db.close()


def refused_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "outside the store" in r.getMessage()]


@pytest.mark.parametrize("status", [PENDING, DELETING])
def test_recovery_never_deletes_outside_the_store(
    tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    fill(root)
    rows = victims(tmp_path, root)
    rows["index.sqlite"] = root / INDEX_NAME  # nor the index itself
    tamper(root, {k: v for k, v in rows.items() if k != "index.sqlite"}, status=status)
    db = sqlite3.connect(root / INDEX_NAME)
    db.execute("UPDATE frames SET path='index.sqlite', status=? WHERE id='f0'", (status,))
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING), FrameStore(root) as store:  # writable open = recovery
        assert store.count() == 3
    assert all(p.read_bytes().startswith(b"precious") for k, p in rows.items() if k != "index.sqlite")
    assert (root / INDEX_NAME).stat().st_size > 0
    warnings = refused_warnings(caplog)
    assert len(warnings) == 1 and "refused 4 index path(s)" in warnings[0]


@pytest.mark.parametrize("limit", ["age", "size"])
def test_retention_never_deletes_outside_the_store(
    tmp_path: Path, limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    fill(root)
    rows = victims(tmp_path, root)
    tamper(root, rows, status=OK)  # the oldest rows: retention takes them first
    kw = {"max_age_s": 3600.0} if limit == "age" else {"max_bytes": 1}
    with caplog.at_level(logging.WARNING), FrameStore(root, **kw) as store:  # type: ignore[arg-type]
        removed = store.enforce_retention(now=T0 + 100)
        assert removed == (3 if limit == "age" else 7) and store.count() == (4 if limit == "age" else 0)
    assert all(p.read_bytes().startswith(b"precious") for p in rows.values())
    assert (root / "escape").is_symlink()  # the planted link is not a folder retention may remove
    warnings = refused_warnings(caplog)
    assert len(warnings) == 1 and "refused 3 index path(s)" in warnings[0]


def test_path_of_refuses_paths_outside_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    fill(root)
    rows = victims(tmp_path, root)
    tamper(root, rows, status=OK)
    with FrameStore(root, readonly=True) as store:
        paths = {r.id: store.path_of(r) for r in store.records()}
    assert [k for k, v in paths.items() if v is None] == ["evil0", "evil1", "evil2"]
    assert all(v is not None and v.is_file() for k, v in paths.items() if not k.startswith("evil"))


def test_delete_by_id_never_deletes_outside_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    fill(root)
    rows = victims(tmp_path, root)
    tamper(root, rows, status=OK)
    with FrameStore(root) as store:
        assert store.delete(["evil0", "evil1", "evil2", "f1"]) == 4
    assert all(p.is_file() for p in rows.values())
    assert not list(root.glob("cam/*/f1.png"))


@pytest.mark.parametrize("fmt", ["coco", "folder"])
def test_export_refuses_paths_outside_the_store(
    tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    fill(root)
    rows = victims(tmp_path, root)
    tamper(root, rows, status=OK)  # with the outside files' true sha256: only the path rule stops them
    with caplog.at_level(logging.WARNING):
        summary = export_dataset(root, tmp_path / "ds", fmt, val_fraction=0.5)
    assert summary["frames"] == 4 and summary["refused_paths"] == 3
    exported = [p for p in (tmp_path / "ds").rglob("*.png")]
    assert len(exported) == 4 and not [p for p in exported if p.read_bytes().startswith(b"precious")]
    warnings = refused_warnings(caplog)
    assert len(warnings) == 1 and "refused 3 index path(s)" in warnings[0]


def test_export_skips_files_that_do_not_match_their_sha256(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    fill(root)
    with FrameStore(root, readonly=True) as store:
        recs = store.records()
    (root / recs[1].path).write_bytes(b"replaced after it was stored")
    db = sqlite3.connect(root / INDEX_NAME)  # a row with no recorded digest is not trusted either
    db.execute("UPDATE frames SET sha256='' WHERE id=?", (recs[2].id,))
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING):
        summary = export_dataset(root, tmp_path / "ds", "coco", val_fraction=0.0)
    assert summary["frames"] == 2 and summary["sha256_mismatch"] == 2
    coco = json.loads((tmp_path / "ds" / "annotations" / "instances_train.json").read_text())
    assert {im["framesift_id"] for im in coco["images"]} == {recs[0].id, recs[3].id}
    assert [r for r in caplog.records if "sha256" in r.getMessage() and "skipped 2" in r.getMessage()]


def test_add_records_the_sha256_of_what_it_wrote(tmp_path: Path) -> None:
    fill(tmp_path)
    with FrameStore(tmp_path, readonly=True) as store:
        for rec in store.records():
            assert rec.sha256 == hashlib.sha256((tmp_path / rec.path).read_bytes()).hexdigest()


HOSTILE_IDS = [
    "..",
    "../x",
    "a/b",
    "/abs/path",
    ".",
    "",
    "../../../../tmp/evil",
    "x/../../..",
    "\\..\\x",
    "a" * 400,
]


def test_hostile_source_ids_never_write_outside_the_store(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "store"
    with FrameStore(root, format="png") as store:
        for i, source in enumerate(HOSTILE_IDS):
            for j, fid in enumerate([f"id{i}", *HOSTILE_IDS]):
                store.add(id=f"{i}-{j}-{fid}" if fid else f"{i}-{j}", source=source,
                          image=class_image(0, (8, 8)), wallclock=T0)  # fmt: skip
            store.add(id=HOSTILE_IDS[i] + f"#{i}", source="cam", image=class_image(0, (8, 8)), wallclock=T0)
        recs = store.records()
    assert len(recs) == len(HOSTILE_IDS) * (len(HOSTILE_IDS) + 2)
    base = root.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["store"]
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(INDEX_NAME)]
    assert len(files) == len(recs)  # no two frames share a file
    for rec in recs:
        path = (root / rec.path).resolve()
        assert path.is_relative_to(base) and path.is_file()
        assert len(Path(rec.path).parts) == 3 and not any(
            part.startswith(".") for part in Path(rec.path).parts
        )


def test_folder_export_keeps_hostile_source_names_inside(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with FrameStore(root, format="png") as store:
        for i, source in enumerate(HOSTILE_IDS):
            store.add(id=f"f{i}", source=source, image=class_image(i, (8, 8)), wallclock=T0)
    out = tmp_path / "a" / "ds"
    summary = export_dataset(root, out, "folder", val_fraction=0.0)
    assert summary["frames"] == len(HOSTILE_IDS)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["ds"]
    assert len([p for p in out.rglob("*.png")]) == len(HOSTILE_IDS)


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in ("href", "src")]


def test_gallery_links_only_relative_files_inside_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    fill(root, 6)
    evil = {
        "f0": "javascript:alert(1)",
        "f1": "JaVaScRiPt:alert(document.cookie)//x.png",
        "f2": "http://evil.example/x.png",
        "f3": "data:text/html,<script>alert(1)</script>",
        "f4": str(tmp_path / "outside.png"),
    }
    db = sqlite3.connect(root / INDEX_NAME)
    for fid, path in evil.items():
        db.execute("UPDATE frames SET path=? WHERE id=?", (path, fid))
    db.execute(
        "UPDATE frames SET source=?, reason=?, scores=? WHERE id='f5'",
        ('"><script>alert(1)</script>\x1b[2J', "<img src=x onerror=alert(1)>", json.dumps({"<u>k</u>": 1.0})),
    )
    db.commit()
    db.close()
    with FrameStore(root, readonly=True) as store:
        hits = [Hit(1.0, rec) for rec in store.records()]
    for page_dir in (root, tmp_path / "pages"):  # beside the index: a relative path IS the link
        with caplog.at_level(logging.WARNING):
            page = write_html(hits, root, page_dir / "g.html", "<script>q</script>")
        text = page.read_text()
        parser = Links()
        parser.feed(text)
        assert len(parser.urls) == 2 * 5  # href + src for each frame inside the store (f4 refused)
        for url in parser.urls:
            parts = urllib.parse.urlsplit(url)
            assert parts.scheme == "" and parts.netloc == "" and not url.startswith("/"), url
            assert (page_dir / urllib.parse.unquote(url)).resolve().is_relative_to(root.resolve())
        assert "<script>" not in text and "<img src=x" not in text and "<u>" not in text
        assert text.count("path outside the store: refused") == 1
    assert "\x1b" not in format_hits(hits, root)


@pytest.fixture
def store_with_index(tmp_path: Path) -> Iterator[tuple[Path, FakeEmbedder]]:
    root = tmp_path / "out" / "store"
    emb = fill(root, 40)
    (tmp_path / "q.png").write_bytes(next(root.glob("cam/*/*.png")).read_bytes())
    yield root, emb


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framesift", *args], capture_output=True, text=True, timeout=120
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], index: Path, *words: str) -> None:
    assert proc.returncode == EXIT_INPUT, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "sqlite3." not in proc.stderr, proc.stderr
    assert str(index) in lines[0] and all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not-framesift"])
def test_unreadable_index_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path, store_with_index: tuple[Path, FakeEmbedder], damage: str
) -> None:
    root, emb = store_with_index
    index = root / INDEX_NAME
    if damage == "garbage":
        index.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    elif damage == "truncated":
        data = index.read_bytes()
        index.write_bytes(data[: len(data) // 2])
    else:
        index.unlink()
        sqlite3.connect(index).executescript("CREATE TABLE frames (id TEXT); CREATE TABLE meta (k TEXT);")
    fix = "move it aside"
    assert_one_line(
        cli("search", "--store", str(root.parent), "--image", str(tmp_path / "q.png")), index, fix
    )
    assert_one_line(
        cli("export", "--store", str(root), "--format", "coco", "--out", str(tmp_path / "ds")), index, fix
    )
    for readonly in (True, False):  # opening for writing: the same error, the index left as it was
        before = index.read_bytes()
        with pytest.raises(SourceError, match=fix):
            FrameStore(root, readonly=readonly).open()
        assert index.read_bytes() == before
    with pytest.raises(SourceError, match=fix):
        search(root, image=class_image(1, (24, 32)), embedder=emb)


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def locked(store_with_index: tuple[Path, FakeEmbedder]) -> Iterator[tuple[Path, Path]]:
    root, _ = store_with_index
    index = root / INDEX_NAME
    db = sqlite3.connect(index)  # a rollback journal (not WAL): an exclusive lock keeps readers out too
    assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    db.close()
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(index)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield root, index
    finally:
        proc.kill()
        proc.wait(10)


def test_index_locked_by_another_process_is_one_line(
    tmp_path: Path, locked: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, index = locked
    proc = cli("export", "--store", str(root), "--format", "coco", "--out", str(tmp_path / "ds"))
    assert_one_line(proc, index, "locked by another process", "retry")  # after LOCK_TIMEOUT_S (5 s)
    monkeypatch.setattr(connection, "LOCK_TIMEOUT_S", 0.2)
    with pytest.raises(SourceError, match="locked by another process"):
        search(root, image=class_image(1, (24, 32)), embedder=FakeEmbedder())
    with pytest.raises(SinkError, match="locked by another process") as exc:  # opening for writing
        FrameStore(root).open()
    assert not exc.value.transient


def test_wal_store_stays_readable_while_a_writer_holds_its_lock(
    tmp_path: Path, store_with_index: tuple[Path, FakeEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, emb = store_with_index
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(root / INDEX_NAME)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        assert export_dataset(root, tmp_path / "ds", "coco")["frames"] == 40
        assert len(search(root, image=class_image(1, (24, 32)), embedder=emb, k=3)) == 3
        monkeypatch.setattr(connection, "LOCK_TIMEOUT_S", 0.2)
        with pytest.raises(SinkError, match="locked by another process"):
            FrameStore(root).open()
    finally:
        proc.kill()
        proc.wait(10)


def test_malformed_rows_are_one_line(tmp_path: Path) -> None:
    fill(tmp_path)
    db = sqlite3.connect(tmp_path / INDEX_NAME)
    db.execute("UPDATE frames SET scores='not json', path=42 WHERE id='f1'")
    db.execute("UPDATE frames SET embedding=X'00' WHERE id='f2'")
    db.commit()
    db.close()
    with FrameStore(tmp_path, readonly=True) as store:
        with pytest.raises(SourceError, match=r"frame 'f1' has a malformed row"):
            store.records()
        with pytest.raises(SourceError, match="embeddings of different or invalid sizes"):
            list(store.iter_embeddings())
