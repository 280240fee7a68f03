"""Dataset-map cost: the first layout + flags for N embeddings (512-d, clustered), and the cost of
redacting a 1 MB adversarial log line (linear-time redaction).

    python bench/web_map.py [N]

Prints a table and a final ``RESULT`` line. The store's SQLite read is not included (layout and flags
are what the cache saves)."""

from __future__ import annotations

import sys
import time

import numpy as np

from framesift.log import redact
from framesift.web.maps import flags, layout


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 512)).astype(np.float32)
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    pos, method = layout(x)
    t1 = time.perf_counter()
    f = flags(x, pos)
    t2 = time.perf_counter()
    text = "a://b:" * (1_000_000 // 6)
    t3 = time.perf_counter()
    redact(text)
    t4 = time.perf_counter()
    small = "a://b:" * (40_000 // 6)
    t5 = time.perf_counter()
    redact(small)
    t6 = time.perf_counter()
    print(f"{'frames':>8} {'method':>6} {'layout_s':>9} {'flags_s':>8} {'dup_groups':>10}")
    print(f"{n:>8} {method:>6} {t1 - t0:>9.2f} {t2 - t1:>8.2f} {f['dup_groups']:>10}")
    print(f"redact 1 MB adversarial: {t4 - t3:.3f} s; 40 KB: {t6 - t5:.4f} s")
    print(
        f"RESULT map_first_s={t2 - t0:.2f} method={method} frames={n} "
        f"redact_1mb_s={t4 - t3:.3f} redact_ratio={(t4 - t3) / max(t6 - t5, 1e-6):.1f}"
    )


if __name__ == "__main__":
    main()
