"""Editor-ready outputs of a :class:`SceneList`: CSV (PySceneDetect columns), JSON, EDL, thumbnails,
an HTML report, and one video file per scene.

Every file is written to a temporary name and renamed, so an interrupted run leaves no partial file.
"""

from __future__ import annotations

import base64
import bisect
import csv
import html
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import IO, cast

from framesift.errors import SinkError
from framesift.scenes.model import SceneList

log = logging.getLogger(__name__)

CSV_HEADER = [
    "Scene Number",
    "Start Frame",
    "Start Timecode",
    "Start Time (seconds)",
    "End Frame",
    "End Timecode",
    "End Time (seconds)",
    "Length (frames)",
    "Length (timecode)",
    "Length (seconds)",
]


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[str]]:
    """Write to ``path.tmp`` then rename; the temporary file is removed on failure."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(
            tmp, mode, encoding=None if "b" in mode else "utf-8", newline="" if "b" not in mode else None
        ) as fh:
            yield cast(IO[str], fh)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SinkError(
            f"{path}: cannot write ({exc.strerror or exc}); check the output folder", transient=False
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm`` as PySceneDetect writes it."""
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def drop_frames(fps: Fraction) -> int:
    """Frame numbers SMPTE drop-frame timecode skips each minute: 2 at 29.97, 4 at 59.94, else 0."""
    for nominal, drop in ((30, 2), (60, 4)):
        if abs(float(fps) - nominal * 1000 / 1001) < 0.005:
            return drop
    return 0


SMPTE_RATES = (Fraction(24000, 1001), 24, 25, Fraction(30000, 1001), 30, 48, 50, Fraction(60000, 1001), 60)


def smpte_rate(fps: Fraction) -> bool:
    """Whether SMPTE timecode carries ``fps`` (23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60)."""
    return any(abs(float(fps) - float(r)) < 0.005 for r in SMPTE_RATES)


def edl_timecode(seconds: float, fps: Fraction) -> str:
    """SMPTE timecode of the frame at ``seconds`` counted at the nominal rate ``fps``: drop-frame
    (``HH:MM:SS;FF``) at 29.97 and 59.94 fps, non-drop (``HH:MM:SS:FF``) otherwise."""
    base = max(1, round(float(fps)))
    n = round(seconds * float(fps))
    drop = drop_frames(fps)
    sep = ":"
    if drop:
        per_10min, per_min = round(float(fps) * 600), base * 60 - drop
        tens, rest = divmod(n, per_10min)
        n += drop * 9 * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
        sep = ";"
    secs, ff = divmod(n, base)
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}{sep}{ff:02d}"


def write_csv(sl: SceneList, path: Path, *, include_cut_list: bool = True) -> Path:
    """Scene list with PySceneDetect's columns (1-based start frame, exclusive end, like its CLI)."""
    with atomic_write(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        if include_cut_list:
            cuts = [timecode(s.start_time) for s in sl.scenes[1:]]
            w.writerow(["Timecode List:", *cuts] if cuts else [])  # as PySceneDetect: no cut, empty row
        w.writerow(CSV_HEADER)
        for s in sl.scenes:
            w.writerow(
                [
                    f"{s.number:d}",
                    f"{s.start + 1:d}",
                    timecode(s.start_time),
                    f"{s.start_time:.3f}",
                    f"{s.end:d}",
                    timecode(s.end_time),
                    f"{s.end_time:.3f}",
                    f"{s.frames:d}",
                    timecode(s.duration),
                    f"{s.duration:.3f}",
                ]
            )
    return path


def write_json(sl: SceneList, path: Path) -> Path:
    with atomic_write(path) as fh:
        json.dump(sl.to_dict(), fh, indent=1)
        fh.write("\n")
    return path


def write_edl(sl: SceneList, path: Path, *, title: str | None = None, reel: str = "AX") -> Path:
    """CMX 3600: one cut event per scene, source and record timecodes equal, at the nominal rate
    (drop-frame at 29.97 and 59.94 fps) from the scenes' timestamps."""
    fcm = "DROP FRAME" if drop_frames(sl.fps) else "NON-DROP FRAME"
    lines = [f"TITLE: {title or sl.path.stem}", f"FCM: {fcm}", ""]
    if not smpte_rate(sl.fps):
        lines.insert(
            2,
            f"* NOTE: {float(sl.fps):g} fps is not a SMPTE timecode rate; timecodes count frames "
            f"at {round(float(sl.fps))} per second, and editors may read them at another rate",
        )
    for s in sl.scenes:
        tin, tout = edl_timecode(s.start_time, sl.fps), edl_timecode(s.end_time, sl.fps)
        lines.append(f"{s.number:03d}  {reel:<4} V     C        {tin} {tout} {tin} {tout}")
        lines.append(f"* FROM CLIP NAME: {sl.path.name}")
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents); SinkError (one line, not retried) naming it when a file
    stands in its place or it cannot be created."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SinkError(
            f"{folder}: cannot create the folder (a file of that name is in the way; move or delete it, "
            "or write to another folder with -o)",
            transient=False,
        ) from None
    except OSError as exc:
        raise SinkError(
            f"{folder}: cannot create the folder ({exc.strerror or exc}); check the output folder",
            transient=False,
        ) from None


def write_thumbnails(sl: SceneList, folder: Path) -> list[Path]:
    """One JPEG per scene (``scene-001.jpg``...); sets ``Scene.thumbnail`` relative to the folder's parent."""
    make_folder(folder)
    out = []
    for s in sl.scenes:
        data = sl.thumbs.get(s.start)
        if not data:
            continue
        p = folder / f"scene-{s.number:03d}.jpg"
        with atomic_write(p, "wb") as fh:
            cast(IO[bytes], fh).write(data)
        s.thumbnail = f"{folder.name}/{p.name}"
        out.append(p)
    return out


# -- HTML ------------------------------------------------------------------------------------------

_KIND_COLOUR = {"cut": "#d62728", "dissolve": "#ff7f0e", "fade": "#7b3fb2"}


def _svg_timeline(sl: SceneList, width: int = 1100, height: int = 260) -> str:
    """Distance signal (sqrt scale), adaptive threshold, transitions and scene bands as inline SVG."""
    n = max(1, sl.frames)
    left, right, top, band = 46, 10, 12, 26
    plot_h = height - top - band - 22
    pw = width - left - right

    def x(i: float) -> float:
        return left + pw * i / n

    def y(v: float) -> float:
        return top + plot_h * (1.0 - min(1.0, math.sqrt(max(0.0, v))))

    sig = sl.signal
    # At most ~2 points per pixel: keep the max of each bucket so spikes survive.
    bucket = max(1, len(sig) // (2 * pw))
    pts, thr = [], []
    for k in range(0, len(sig), bucket):
        chunk = sig[k : k + bucket]
        i = chunk[0][0]
        pts.append(f"{x(i):.1f},{y(max(c[2] for c in chunk)):.1f}")
        thr.append(f"{x(i):.1f},{y(min(c[3] for c in chunk)):.1f}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="distance between consecutive frames over time">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for v in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" fill="#888">{v:g}</text>'
        )
    for e in sl.events:
        a = e.transition_start if e.transition_start is not None else e.frame_index
        b = e.transition_end if e.transition_end is not None else e.frame_index
        col = _KIND_COLOUR.get(e.kind, "#d62728")
        if b > a:
            parts.append(
                f'<rect x="{x(a):.1f}" y="{top}" width="{max(1.5, x(b + 1) - x(a)):.1f}" height="{plot_h}" '
                f'fill="{col}" opacity="0.18"><title>{e.kind} {a}-{b}</title></rect>'
            )
        parts.append(
            f'<line x1="{x(e.frame_index):.1f}" x2="{x(e.frame_index):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{col}" stroke-width="1.5"><title>{e.kind} at frame {e.frame_index} '
            f"({e.time:.2f}s) score {e.score:.3f}</title></line>"
        )
    if pts:
        parts.append(
            f'<polyline points="{" ".join(thr)}" fill="none" stroke="#d62728" stroke-dasharray="4 3" stroke-width="1"/>'
        )
        parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#1f77b4" stroke-width="1"/>')
    by = top + plot_h + 4
    for s in sl.scenes:
        fill = "#cfe3f5" if s.number % 2 else "#e8f1fa"
        parts.append(
            f'<rect x="{x(s.start):.1f}" y="{by}" width="{max(1.0, x(s.end) - x(s.start)):.1f}" height="{band - 6}" '
            f'fill="{fill}" stroke="#9bb"><title>scene {s.number}: {timecode(s.start_time)}-{timecode(s.end_time)}'
            f"</title></rect>"
        )
        if x(s.end) - x(s.start) > 16:
            parts.append(
                f'<text x="{(x(s.start) + x(s.end)) / 2:.1f}" y="{by + 14}" font-size="10" text-anchor="middle" '
                f'fill="#345">{s.number}</text>'
            )
    ticks = _nice_ticks(sl.duration)
    t0 = sig[0][1] - (sig[0][0] * (sig[1][1] - sig[0][1]) if len(sig) > 1 else 0.0) if sig else 0.0
    times = [row[1] - t0 for row in sig]
    for t in ticks:  # frame index of each tick time, from the frames' timestamps
        k = bisect.bisect_left(times, t)
        xi = x(sig[k][0] if k < len(sig) else t * float(sl.fps))
        parts.append(
            f'<text x="{xi:.1f}" y="{height - 4}" font-size="10" text-anchor="middle" fill="#666">{_short_time(t)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _nice_ticks(duration: float) -> list[float]:
    if duration <= 0:
        return [0.0]
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if duration / s <= 12), 7200)
    return [float(t) for t in range(0, int(duration) + 1, step)]


def _short_time(t: float) -> str:
    m, s = divmod(int(t), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1140px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} .meta{color:#666;margin-bottom:16px}
.meta b{color:#222} .legend span{display:inline-block;margin-right:14px;font-size:12px;color:#555}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:5px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;margin:18px 0}
.card{border:1px solid #e3e3e3;border-radius:8px;overflow:hidden;background:#fff;box-shadow:0 1px 2px #0001}
.card img{width:100%;display:block;aspect-ratio:16/9;object-fit:cover;background:#111}
.card .noimg{aspect-ratio:16/9;background:#eee}
.card div.t{padding:6px 9px;font-size:12px;color:#444} .card b{font-size:13px;color:#111}
.tag{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;color:#fff;margin-left:4px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin-top:8px}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:right} th{background:#f6f6f6;position:sticky;top:0}
td:first-child,th:first-child{text-align:center} td.l,th.l{text-align:left}
"""


def _plural(n: int, word: str, with_count: bool = False) -> str:
    w = word if n == 1 else word + "s"
    return f"{n} {w}" if with_count else w


def write_html(sl: SceneList, path: Path) -> Path:
    """A self-contained report: summary, timeline plot, scene thumbnails, scene table."""
    esc = html.escape
    kinds = {k: sum(1 for e in sl.events if e.kind == k) for k in ("cut", "dissolve", "fade")}
    cards, rows = [], []
    for s in sl.scenes:
        data = sl.thumbs.get(s.start)
        img = (
            f'<img alt="scene {s.number}" src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">'
            if data
            else '<div class="noimg"></div>'
        )
        b = s.boundary
        tag = (
            f'<span class="tag" style="background:{_KIND_COLOUR.get(b.kind, "#888")}">{esc(b.kind)}</span>'
            if b
            else ""
        )
        label = f"<br>{esc(s.label)}" if s.label else ""
        cards.append(
            f'<div class="card">{img}<div class="t"><b>Scene {s.number}</b>{tag}<br>'
            f"{timecode(s.start_time)} – {timecode(s.end_time)} · {s.duration:.1f}s{label}</div></div>"
        )
        trans = f"{b.kind} {b.transition_start}–{b.transition_end} ({b.score:.2f})" if b else "start"
        rows.append(
            f"<tr><td>{s.number}</td><td>{s.start}</td><td>{timecode(s.start_time)}</td><td>{s.end}</td>"
            f"<td>{timecode(s.end_time)}</td><td>{s.frames}</td><td>{s.duration:.2f}</td>"
            f'<td class="l">{esc(trans)}</td><td class="l">{esc(s.label or "")}</td></tr>'
        )
    legend = "".join(f'<span><i style="background:{c}"></i>{k}</span>' for k, c in _KIND_COLOUR.items()) + (
        '<span><i style="background:#1f77b4"></i>distance to previous frame</span>'
        '<span><i style="background:repeating-linear-gradient(90deg,#d62728 0 4px,transparent 4px 7px)"></i>'
        "adaptive threshold</span>"
    )
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scenes · {esc(sl.path.name)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>
<h1>{esc(sl.path.name)}</h1>
<div class="meta"><b>{len(sl.scenes)}</b> {_plural(len(sl.scenes), "scene")} ·
{_plural(kinds["cut"], "cut", True)}, {_plural(kinds["dissolve"], "dissolve", True)},
{_plural(kinds["fade"], "fade", True)} · {timecode(sl.duration)} · {sl.frames} frames at {float(sl.fps):.3g} fps ·
{sl.width}×{sl.height} · mode <b>{esc(sl.mode)}</b> · analysed in {sl.elapsed_s:.1f}s
({sl.frames / max(sl.elapsed_s, 1e-9):.0f} frames/s)</div>
<div class="legend">{legend}</div>
{_svg_timeline(sl)}
<div class="grid">{"".join(cards)}</div>
<table><thead><tr><th>#</th><th>Start frame</th><th>Start</th><th>End frame</th><th>End</th><th>Frames</th>
<th>Seconds</th><th class="l">Opened by</th><th class="l">Label</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<p class="meta">framesift scenes · distance axis in square-root scale · start frames 0-based (the CSV uses
PySceneDetect's 1-based numbering)</p>
</body></html>
"""
    with atomic_write(path) as fh:
        fh.write(doc)
    return path


# -- split -----------------------------------------------------------------------------------------


def split_video(
    sl: SceneList, folder: Path, *, crf: int = 18, preset: str = "veryfast", copy: bool = False
) -> list[Path]:
    """One re-encoded H.264 file per scene (``<name>-scene-001.mp4``...), decoding the input once;
    with ``copy``, the packets copied as they are, cut at keyframes (:mod:`framesift.stream.split_copy`)."""
    if copy:  # a video that cannot be cut by copying is re-encoded there, with a warning
        from framesift.stream.split_copy import copy_split

        return copy_split(sl.path, [s.start for s in sl.scenes], folder, _name(sl))
    from framesift.stream.split import split_scenes

    return split_scenes(
        sl.path, [(s.start, s.end) for s in sl.scenes], folder, _name(sl), crf=crf, preset=preset
    )


def _name(sl: SceneList) -> str:
    """The name outputs are called by: the source id (unique in a run), else the file's stem."""
    return sl.source or sl.path.stem


def write_all(
    sl: SceneList,
    folder: Path,
    *,
    html_report: bool = True,
    thumbnails: bool = True,
    split: bool = False,
    copy: bool = False,
) -> dict[str, Path]:
    """Every output for one video into ``folder``; returns the paths by kind. ``split``: one file per
    scene, re-encoded, or with ``copy`` its packets copied (see :func:`split_video`)."""
    make_folder(folder)
    stem = _name(sl)
    paths: dict[str, Path] = {}
    if thumbnails and sl.thumbs:
        write_thumbnails(sl, folder / f"{stem}-thumbs")
        paths["thumbnails"] = folder / f"{stem}-thumbs"
    paths["csv"] = write_csv(sl, folder / f"{stem}-Scenes.csv")
    paths["json"] = write_json(sl, folder / f"{stem}-scenes.json")
    paths["edl"] = write_edl(sl, folder / f"{stem}.edl")
    if html_report:
        paths["html"] = write_html(sl, folder / f"{stem}-scenes.html")
    if split:
        make_folder(folder / f"{stem}-split")
        split_video(sl, folder / f"{stem}-split", copy=copy)
        paths["split"] = folder / f"{stem}-split"
    return paths


__all__ = [
    "CSV_HEADER",
    "edl_timecode",
    "make_folder",
    "split_video",
    "timecode",
    "write_all",
    "write_csv",
    "write_edl",
    "write_html",
    "write_json",
    "write_thumbnails",
]
