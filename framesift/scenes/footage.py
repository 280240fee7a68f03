"""Real footage with known transitions, fetched once into a cache (never committed).

* ``trailer_bbb.mp4`` (Big Buck Bunny, CC-BY Blender Foundation) from the ``moviepy==2.2.1`` sdist
  (``pip download --no-deps --no-binary :all: moviepy==2.2.1``), with the ``trailer.py`` that edited
  it. The edit transitions below are computed from that script's clip times and effects (checked
  against the script's text, so a different script is refused); the four hard cuts that the source
  film itself has inside the chosen subclips were annotated by looking at the frames.
* ``vtest.avi`` from Debian's ``opencv-doc`` (a static surveillance camera: no transition).

Cache: ``$FRAMESIFT_CACHE/footage`` or ``~/.cache/framesift/footage``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from framesift.samples_scenes import Transition

MOVIEPY = "moviepy==2.2.1"
TRAILER_MEMBER = "docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4"
SCRIPT_MEMBER = "docs/_static/code/getting_started/moviepy_10_minutes/trailer.py"
VTEST_CANDIDATES = (
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi.gz",
)

# trailer.py, in output seconds (fps 24). Each entry: the statements it comes from.
_SCRIPT_FACTS = (
    "intro_clip = video.subclipped(1, 11)",  # 0-10 s, FadeIn(1) FadeOut(1)
    "bird_clip = video.subclipped(16, 20)",  # starts at intro end: 10-14 s, fades 1 s
    "bunny_clip = video.subclipped(37, 55)",  # 14-32 s, fades 1 s
    '"00:03:34.75", "00:03:56"',  # rodents 21.25 s ...
    "rodents_clip.with_section_cut_out(start_time=4, end_time=10)",  # ... minus 6 s: 32-47.25, cut at 36
    'rambo_clip = video.subclipped("04:41.5", "04:44.70")',  # 3.2 s
    "rambo_clip = rambo_clip.with_start(rodents_clip.end - 1.5)",  # starts 45.75
    "vfx.CrossFadeIn(1.5), vfx.FadeOut(1)",  # CrossFadeIn 1.5 s, FadeOut 1 s ...
    "rambo_clip.with_effects([vfx.MultiplySpeed(0.5)])",  # ... doubled: 3 s and 2 s; ends 52.15
    "made_with_text.with_start(rambo_clip.end)",  # title card on black from 52.15
)
TRAILER_FPS = 24
_EDIT_SECONDS = (  # (kind, start s, end s): fades are fade-out + fade-in through black
    ("fade", 9.0, 11.0),  # intro → bird
    ("fade", 13.0, 15.0),  # bird → bunny
    ("fade", 31.0, 33.0),  # bunny → rodents
    ("cut", 36.0, 36.0),  # rodents: with_section_cut_out(4, 10)
    ("dissolve", 45.75, 48.75),  # rodents CrossFadeOut(1.5) under rambo CrossFadeIn(1.5)/0.5 speed
    ("fade", 50.15, 52.15),  # rambo FadeOut(1)/0.5 speed, then the title card
)
# Shot changes inside the film's own footage (not in trailer.py), 0-based output frames.
_FILM_CUTS = (593, 900, 988, 1049)


@dataclass(frozen=True)
class RealClip:
    path: Path
    fps: Fraction
    transitions: tuple[Transition, ...]
    note: str


def cache_dir() -> Path:
    root = os.environ.get("FRAMESIFT_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "framesift"
    d = base / "footage"
    d.mkdir(parents=True, exist_ok=True)
    return d


def trailer_transitions(script: str) -> tuple[Transition, ...]:
    """The true transitions of trailer_bbb.mp4 (frames, inclusive), given the text of trailer.py."""
    missing = [fact for fact in _SCRIPT_FACTS if fact not in script]
    if missing:
        raise ValueError(
            f"trailer.py differs from the one these transitions were derived from: {missing[0]!r}"
        )
    out = []
    for kind, a, b in _EDIT_SECONDS:
        start = round(a * TRAILER_FPS)
        end = start if kind == "cut" else round(b * TRAILER_FPS) - 1
        out.append(Transition(kind, start, end))
    out += [Transition("cut", c, c) for c in _FILM_CUTS]
    return tuple(sorted(out, key=lambda t: t.start))


def bbb_trailer(directory: Path | None = None, *, timeout_s: float = 600) -> RealClip:
    """Fetch (once) and return the Big Buck Bunny trailer; RuntimeError saying why if impossible."""
    d = directory or cache_dir()
    video, script = d / "trailer_bbb.mp4", d / "trailer.py"
    if not (video.exists() and script.exists()):
        dl = d / "moviepy-sdist"
        dl.mkdir(exist_ok=True)
        sdists = list(dl.glob("moviepy-2.2.1.tar.gz"))
        if not sdists:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                MOVIEPY,
                "-d",
                str(dl),
            ]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=timeout_s)
            except (subprocess.SubprocessError, OSError) as exc:
                raise RuntimeError(f"cannot download the {MOVIEPY} sdist with pip ({exc})") from None
            sdists = list(dl.glob("moviepy-2.2.1.tar.gz"))
            if not sdists:
                raise RuntimeError(f"pip download {MOVIEPY} produced no sdist")
        with tarfile.open(sdists[0]) as tar:
            for member, target in ((TRAILER_MEMBER, video), (SCRIPT_MEMBER, script)):
                src = tar.extractfile(f"moviepy-2.2.1/{member}")
                if src is None:
                    raise RuntimeError(f"{member} is missing from the {MOVIEPY} sdist")
                tmp = target.with_name(target.name + ".tmp")
                with open(tmp, "wb") as fh:
                    shutil.copyfileobj(src, fh)
                tmp.replace(target)
        shutil.rmtree(dl, ignore_errors=True)
    trans = trailer_transitions(script.read_text(encoding="utf-8"))
    return RealClip(video, Fraction(TRAILER_FPS), trans, "Big Buck Bunny trailer (CC-BY), moviepy 2.2.1 docs")


def vtest(directory: Path | None = None) -> RealClip:
    """OpenCV's vtest.avi (static camera, people walking): zero transitions."""
    for cand in VTEST_CANDIDATES:
        p = Path(cand)
        if not p.exists():
            continue
        if p.suffix != ".gz":
            return RealClip(p, Fraction(10), (), "opencv-doc vtest.avi (static camera)")
        out = (directory or cache_dir()) / "vtest.avi"
        if not out.exists():
            tmp = out.with_name("vtest.avi.tmp")
            with gzip.open(p, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(out)
        return RealClip(out, Fraction(10), (), "opencv-doc vtest.avi (static camera)")
    raise RuntimeError("vtest.avi not found: apt-get install opencv-doc")
