"""A 2-D map of a store's embeddings for the dataset-map page, cached beside the index.

Layout: t-SNE (scikit-learn, when installed and the store has at most ``TSNE_MAX`` frames) over a
50-d PCA, else the 2-D PCA itself. The result is cached in ``<store>/.framesift-map.npz`` (or in
memory when the store is read-only) under the list of frame ids: an unchanged store opens from the
cache, and frames added since are placed incrementally (each at the mean position of its nearest
mapped neighbours by cosine) until they are over a fifth of the map, when it is recomputed.

Flags: clusters (k-means on the map), outliers (far from their cluster's centre on the map) and
near-duplicate groups (frames in one fine map cell whose embeddings have cosine >= ``DUP_COSINE``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from framesift.store.index import FrameStore
from framesift.store.search import store_model

log = logging.getLogger("framesift.web.maps")

CACHE_NAME = ".framesift-map.npz"
TSNE_MAX = 20_000
DUP_COSINE = 0.98
CLUSTERS = 8
_memory: dict[str, tuple[list[str], np.ndarray, str]] = {}
_lock = threading.Lock()


def _key(model: str, ids: list[str]) -> str:
    return hashlib.sha256((model + "\0" + "\0".join(ids)).encode()).hexdigest()


def layout(x: np.ndarray) -> tuple[np.ndarray, str]:
    """(n, d) unit vectors → (n, 2) positions and the method's name."""
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.float32), "none"
    centred = x - x.mean(axis=0, keepdims=True)
    if n < 3:
        return np.pad(centred[:, :2], ((0, 0), (0, max(0, 2 - centred.shape[1])))).astype(np.float32), "pca"
    _, _, vt = np.linalg.svd(centred[: min(n, 20_000)], full_matrices=False)
    reduced = centred @ vt[: min(50, vt.shape[0])].T
    if n <= TSNE_MAX and n >= 10:
        try:
            from sklearn.manifold import TSNE

            pos = TSNE(n_components=2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=0)
            return pos.fit_transform(reduced).astype(np.float32), "tsne"
        except ImportError:
            pass
    return reduced[:, :2].astype(np.float32), "pca"


def _place(new: np.ndarray, old: np.ndarray, old_pos: np.ndarray, k: int = 5) -> np.ndarray:
    """Positions for ``new`` embeddings: the mean position of their ``k`` nearest ``old`` ones."""
    out = np.zeros((new.shape[0], 2), np.float32)
    for start in range(0, new.shape[0], 1024):
        sims = new[start : start + 1024] @ old.T
        kk = min(k, old.shape[0])
        near = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        out[start : start + 1024] = old_pos[near].mean(axis=1)
    return out


def kmeans(pos: np.ndarray, k: int = CLUSTERS, iters: int = 20) -> tuple[np.ndarray, np.ndarray]:
    n = pos.shape[0]
    k = max(1, min(k, n))
    rng = np.random.default_rng(0)
    centres = pos[rng.choice(n, k, replace=False)] if n else np.zeros((0, 2), np.float32)
    labels = np.zeros(n, np.int64)
    for _ in range(iters):
        d = ((pos[:, None, :] - centres[None, :, :]) ** 2).sum(-1) if n <= 200_000 else None
        if d is None:
            break
        labels = d.argmin(axis=1)
        for c in range(k):
            members = pos[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    return labels, centres


def flags(x: np.ndarray, pos: np.ndarray) -> dict[str, Any]:
    """Clusters, outliers and near-duplicate groups (see the module docstring)."""
    n = pos.shape[0]
    labels, centres = kmeans(pos)
    dist = np.linalg.norm(pos - centres[labels], axis=1) if n else np.zeros(0)
    outlier = np.zeros(n, bool)
    for c in range(len(centres)):
        m = labels == c
        if m.sum() >= 5:
            d = dist[m]
            outlier[m] = d > d.mean() + 3 * d.std()
    span = float(np.ptp(pos, axis=0).max()) if n else 1.0
    cell = max(span / 400.0, 1e-9)
    groups = np.full(n, -1, np.int64)
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (cx, cy) in enumerate(np.floor(pos / cell).astype(np.int64)):
        buckets.setdefault((int(cx), int(cy)), []).append(i)
    g = 0
    for members in buckets.values():
        if len(members) < 2:
            continue
        head = members[0]
        dup = [i for i in members[1:] if float(x[i] @ x[head]) >= DUP_COSINE]
        if dup:
            groups[[head, *dup]] = g
            g += 1
    return {
        "cluster": labels.tolist(),
        "outlier": outlier.tolist(),
        "dup_group": groups.tolist(),
        "dup_groups": g,
    }


def _load(root: Path, key_ids: list[str]) -> tuple[list[str], np.ndarray, str] | None:
    path = root / CACHE_NAME
    with _lock:
        mem = _memory.get(str(root))
    if mem is not None:
        return mem
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return [str(i) for i in z["ids"]], z["pos"].astype(np.float32), str(z["method"])
        except (OSError, ValueError, KeyError):
            log.warning("map cache %s unreadable: recomputing", path)
    return None


def _save(root: Path, ids: list[str], pos: np.ndarray, method: str) -> None:
    with _lock:
        _memory[str(root)] = (ids, pos, method)
    tmp = root / (CACHE_NAME + ".tmp.npz")
    try:
        np.savez(tmp, ids=np.array(ids), pos=pos, method=np.array(method))
        tmp.replace(root / CACHE_NAME)
    except OSError:  # a read-only store: the memory cache serves this process
        tmp.unlink(missing_ok=True)


def store_map(root: Path) -> dict[str, Any]:
    """The map document of the store at ``root`` (see the module docstring)."""
    with FrameStore(root, readonly=True).open() as store:
        model = store_model(store)
        ids: list[str] = []
        mats = []
        for chunk_ids, mat in store.iter_embeddings(model=model):
            ids += chunk_ids
            mats.append(mat)
        recs = {r.id: r for r in store.records(model=model)}
    x = np.concatenate(mats) if mats else np.zeros((0, 1), np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cached = _load(root, ids)
    how = "computed"
    if cached is not None and cached[0] == ids:
        pos, method, how = cached[1], cached[2], "cached"
    elif cached is not None and set(cached[0]) <= set(ids) and len(ids) - len(cached[0]) <= len(ids) // 5:
        index = {fid: i for i, fid in enumerate(ids)}
        old_rows = [index[f] for f in cached[0]]
        new_rows = [i for i, f in enumerate(ids) if f not in set(cached[0])]
        pos = np.zeros((len(ids), 2), np.float32)
        pos[old_rows] = cached[1]
        if new_rows:
            pos[new_rows] = _place(x[new_rows], x[old_rows], cached[1])
        method, how = cached[2], "incremental"
        _save(root, ids, pos, method)
    else:
        pos, method = layout(x)
        _save(root, ids, pos, method)
    f = flags(x, pos)
    sources = sorted({r.source for r in recs.values()})
    reasons = sorted({r.reason for r in recs.values()})
    src_index = {s: i for i, s in enumerate(sources)}
    rsn_index = {s: i for i, s in enumerate(reasons)}
    return {
        "model": model,
        "method": method,
        "how": how,
        "ids": ids,
        "x": [round(float(v), 4) for v in pos[:, 0]] if len(ids) else [],
        "y": [round(float(v), 4) for v in pos[:, 1]] if len(ids) else [],
        "sources": sources,
        "reasons": reasons,
        "source": [src_index.get(recs[i].source, -1) if i in recs else -1 for i in ids],
        "reason": [rsn_index.get(recs[i].reason, -1) if i in recs else -1 for i in ids],
        **f,
    }
