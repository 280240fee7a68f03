"""Semantic search over a frame store: text or image → embedding (same model as the index) → cosine.

Brute force: the index's float16 embeddings are read in chunks and scored with one matrix product
per chunk, keeping a running top-k. Memory is one chunk; time is linear in the store (about 1M x
512-d frames a few seconds on a CPU). Beyond that, use a vector index (see docs/collect.md).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from framesift.config.units import parse_duration
from framesift.engines.base import Embedder
from framesift.errors import ConfigError, SourceError
from framesift.store.index import FrameStore, StoredFrame
from framesift.store.paths import inside, resolve_store_dir
from framesift.store.recovery import warn_refused

log = logging.getLogger("framesift.store.search")


@dataclass(frozen=True)
class Hit:
    """One search result: cosine ``score`` and the index record."""

    score: float
    frame: StoredFrame


def parse_since(text: str, now: float | None = None) -> float:
    """``'2h'``/``'7d'`` (that long ago) or an ISO date/time (UTC unless it says otherwise) → Unix time."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ConfigError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"invalid --since {text!r}: write a duration ago (2h, 7d) or a date/time (2026-01-31T08:00)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def top_k(
    store: FrameStore,
    query: np.ndarray,
    k: int = 20,
    *,
    model: str | None,
    source: str | None = None,
    since: float | None = None,
    chunk: int = 8192,
) -> list[tuple[str, float]]:
    """Ids and cosines of the ``k`` stored embeddings closest to ``query`` (chunked brute force)."""
    q = np.asarray(query, dtype=np.float32).ravel()
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    best_ids: list[str] = []
    best = np.zeros(0, np.float32)
    for ids, mat in store.iter_embeddings(model=model, source=source, since=since, chunk=chunk):
        if mat.shape[1] != q.size:
            raise ConfigError(
                f"{store.root}: stored embeddings have {mat.shape[1]} dimensions but the query has {q.size}: "
                "search with the model that built the store"
            )
        scores = mat @ q
        all_scores = np.concatenate([best, scores])
        all_ids = best_ids + ids
        if all_scores.size > k:
            keep = np.argpartition(-all_scores, k - 1)[:k]
            best = all_scores[keep]
            best_ids = [all_ids[i] for i in keep]
        else:
            best, best_ids = all_scores, all_ids
    order = np.argsort(-best, kind="stable")
    return [(best_ids[i], float(best[i])) for i in order]


def store_model(store: FrameStore, model: str | None = None) -> str:
    """The embedding model of the store (the one most frames were embedded with), or ``model``."""
    models = store.models()
    if not models:
        raise ConfigError(f"{store.root}: the store holds no frames with embeddings yet")
    if model is not None:
        if model not in models:
            raise ConfigError(f"{store.root}: no frames embedded with {model!r} (found: {', '.join(models)})")
        return model
    if len(models) > 1:
        log.warning(
            "store %s holds several models (%s); searching %s", store.root, ", ".join(models), models[0]
        )
    return models[0]


def embedder_for_store(store: FrameStore, model: str) -> Embedder:
    """Rebuild the embedder that filled the store: ``pixel``, or the engine config recorded at collect."""
    if model == "pixel":
        from framesift.engines.models.pixel import PixelEmbedder

        return PixelEmbedder()
    from framesift.config.engines import EngineConfig

    raw = store.get_meta("engine")
    if raw is not None:
        try:
            engine_cfg = EngineConfig.model_validate(json.loads(raw))
        except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
            raise SourceError(
                f"{store.index_path}: the engine config recorded in the index is not valid "
                f"({str(exc).splitlines()[0]}); pass the embedder programmatically, or collect again",
                source=str(store.index_path),
            ) from None
    elif model.startswith("clip:") and "/" in model:  # clip:<arch>/<pretrained tag>#<weights hash>
        arch, _, rest = model[len("clip:") :].partition("/")
        tag = rest.split("#", 1)[0]
        if tag == "random":
            raise ConfigError(
                f"{store.root}: frames were embedded with random CLIP weights ({model}); not searchable"
            )
        engine_cfg = EngineConfig(model=arch, pretrained=tag)
    else:
        raise ConfigError(
            f"{store.root}: frames were embedded with {model!r} but the store records no engine config; "
            "pass the embedder programmatically (framesift.store.search.search(..., embedder=...))"
        )
    try:
        from framesift.engines.factory import build_embedder
    except ImportError as exc:
        raise ConfigError(f"cannot rebuild the {model!r} embedder: {exc}") from None

    embedder: Embedder = build_embedder(engine_cfg)
    if embedder.model_id != model:
        raise ConfigError(
            f"{store.root}: frames were embedded with {model!r} but the recorded engine now builds "
            f"{embedder.model_id!r} (other weights?): the embeddings are not comparable"
        )
    return embedder


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file → RGB uint8; SourceError naming the file if it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(
            f"{path}: cannot read the query image (missing, or not an image file)", source=str(path)
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def search(
    store_dir: str | os.PathLike[str],
    *,
    text: str | None = None,
    image: str | os.PathLike[str] | np.ndarray | None = None,
    k: int = 20,
    source: str | None = None,
    since: float | None = None,
    embedder: Embedder | None = None,
    model: str | None = None,
) -> list[Hit]:
    """Rank stored frames by cosine to a text or image query embedded with the store's model."""
    if (text is None) == (image is None):
        raise ConfigError("search needs exactly one query: a text, or --image FILE")
    with FrameStore(resolve_store_dir(store_dir), readonly=True) as store:
        name = store_model(store, model)
        emb = embedder or embedder_for_store(store, name)
        if text is not None:
            if not emb.supports_text:
                raise ConfigError(
                    f"store {store_dir} was built with the {name!r} embedder, which has no text tower: "
                    "search it with --image query.jpg, or collect with a CLIP model for text search"
                )
            q = emb.embed_texts([text])[0]
        else:
            arr = image if isinstance(image, np.ndarray) else read_image(image)  # type: ignore[arg-type]
            q = emb.embed_images([arr])[0]
        ranked = top_k(store, q, k, model=name, source=source, since=since)
        hits = []
        for fid, score in ranked:
            rec = store.get(fid)
            if rec is not None:
                hits.append(Hit(score, rec))
    return hits


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """``text`` without control characters (an index could hold terminal escape sequences)."""
    return _CONTROL.sub("?", text)


def _when(wallclock: float, fmt: str) -> str:
    try:
        return datetime.fromtimestamp(wallclock, tz=timezone.utc).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return "?"


def _root(store_dir: str | os.PathLike[str]) -> Path:
    try:
        return resolve_store_dir(store_dir)
    except ConfigError:
        return Path(store_dir)


def format_hits(hits: Sequence[Hit], store_dir: str | os.PathLike[str]) -> str:
    """A plain-text table of results (control characters from the index shown as ``?``)."""
    root = _root(store_dir)
    lines = [
        f"{'rank':>4}  {'score':>6}  {'source':<12} {'captured (UTC)':<19}  {'t(s)':>8}  {'reason':<12} path"
    ]
    for i, h in enumerate(hits, 1):
        f = h.frame
        when = _when(f.wallclock, "%Y-%m-%d %H:%M:%S")
        path = inside(root, f.path) or "(path outside the store: refused)"
        lines.append(
            _printable(
                f"{i:>4}  {h.score:6.3f}  {f.source:<12} {when:<19}  {f.time:8.2f}  {f.reason:<12} {path}"
            )
        )
    return "\n".join(lines)


def write_html(
    hits: Sequence[Hit], store_dir: str | os.PathLike[str], out: str | os.PathLike[str], query: str
) -> Path:
    """An HTML gallery of the results, written atomically.

    Whatever the index holds, a link is only ever a percent-encoded path relative to the page, to a
    file inside the store (a path leading elsewhere gets no image, and is counted and logged); every
    text is HTML-escaped.
    """
    out = Path(out)
    base = out.parent.resolve()
    root = _root(store_dir)
    cards = []
    refused = 0
    for i, h in enumerate(hits, 1):
        f = h.frame
        when = _when(f.wallclock, "%Y-%m-%d %H:%M:%S UTC")
        scores = ", ".join(f"{k} {v:.3f}" for k, v in f.scores.items())
        path = inside(root, f.path)
        if path is None:
            refused += 1
            link = "<p>(path outside the store: refused)</p>"
        else:
            rel = os.path.relpath(path.resolve(), base).split(os.sep)
            url = html.escape("/".join(urllib.parse.quote(part, safe="") for part in rel))
            link = f'<a href="{url}"><img src="{url}" loading="lazy"></a>'
        cards.append(
            f"<figure>{link}<figcaption><b>#{i}</b> score {h.score:.3f}<br>{html.escape(f.source)} · {when} · "
            f"t={f.time:.2f}s<br>{html.escape(f.reason)} ({html.escape(scores)})<br>"
            f"<code>{html.escape(f.id)}</code></figcaption></figure>"
        )
    warn_refused(root, refused, "writing the search gallery")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>framesift search</title><style>"
        "body{font-family:sans-serif;margin:1em}figure{display:inline-block;width:320px;margin:6px;"
        "vertical-align:top}img{width:320px}figcaption{font-size:12px}</style></head><body>"
        f"<h1>{html.escape(query)}</h1><p>{len(hits)} result(s) from {html.escape(str(store_dir))}</p>"
        + "".join(cards)
        + "</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
