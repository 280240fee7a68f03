"""The UI in a real browser: Debian's chromium + chromium-driver through Selenium, started and stopped
by fixtures. Pages load with an empty JavaScript console, searches rank frames by the engine's own
cosines, a source added from the form appears live, and hostile text renders as text. Screenshots
are saved in each test's temporary folder."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from framesift.config import parse_config
from framesift.engines.models.pixel import PixelEmbedder
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo
from framesift.store.index import FrameStore
from framesift.store.search import top_k
from framesift.web.app import build_app
from framesift.web.security import Policy
from framesift.web.server import WebServer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"
)
XSS = '<img src=x onerror="window.__xss=1">'


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium per test (quit at its end, with every process it started)."""
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chrome')}"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = np.zeros((90, 160, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        cv2.rectangle(
            img, (10 * i, 10), (10 * i + 40, 60), tuple(int(v) for v in rng.integers(0, 255, 3)), -1
        )
        out.append(img)
    return out


def make_store(root: Path, embedder: Any, n: int = 8) -> list[str]:
    ids = []
    with FrameStore(root, fsync=False) as store:
        vecs = embedder.embed_images(_images(n))
        for i, (img, vec) in enumerate(zip(_images(n), vecs, strict=True)):
            fid = f"f{i:02d}"
            store.add(id=fid, source=XSS if i == 0 else f"cam{i % 2}", image=img, wallclock=1.8e9 + i,
                      reason=XSS if i == 1 else "novel", embedding=vec, model=embedder.model_id)  # fmt: skip
            ids.append(fid)
    return ids


@contextlib.contextmanager
def serving(**kwargs: Any) -> Iterator[str]:
    server = WebServer(build_app(Policy(), **kwargs), port=0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def wait(cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = cond()
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError("browser condition not met in time")


@pytest.fixture
def clip(make_clip: Callable[..., ClipInfo]) -> Path:
    return make_clip(segments=(25,), width=160, height=120).path


def test_every_page_loads_with_an_empty_console(browser: Any, clip: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    make_store(store, PixelEmbedder())
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / f"{'x'}.html").write_text("<html><body style='color:red'>report</body></html>")
    cfg = parse_config({"sources": [{"type": "file", "id": "a", "path": str(clip), "realtime": True, "loop": True}],
                        "metrics": {"port": 0}})  # fmt: skip
    with Pipeline(cfg) as p, serving(pipeline=p, control=True, store_dir=store, scenes_dir=scenes) as base:
        browser.get_log("browser")
        for page, ready in (("/live", ".card img[src]"), ("/events", "#events tr"), ("/frames", ".thumb"),
                            ("/map", "#map-note"), ("/scenes", "#reports li a")):  # fmt: skip
            browser.get(base + page)
            wait(lambda r=ready: browser.find_elements(By.CSS_SELECTOR, r))
            if page == "/map":
                wait(lambda: "8 frames" in browser.find_element(By.ID, "map-note").text)
            time.sleep(0.3)
            browser.save_screenshot(str(tmp_path / f"page{page.replace('/', '-')}.png"))
            assert console_errors(browser) == [], page


def test_image_search_returns_the_frame_first(browser: Any, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ids = make_store(store, PixelEmbedder())
    query = tmp_path / "query.png"
    cv2.imwrite(str(query), cv2.cvtColor(_images(8)[5], cv2.COLOR_RGB2BGR))
    with serving(store_dir=store) as base:
        browser.get(base + "/frames")
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".thumb"))
        browser.find_element(By.ID, "image-file").send_keys(str(query))
        wait(lambda: "ranked" in browser.find_element(By.ID, "search-note").text)
        first = browser.find_elements(By.CSS_SELECTOR, "#gallery .thumb")[0]
        browser.save_screenshot(str(tmp_path / "image-search.png"))
        assert first.get_attribute("data-id") == ids[5]
        # "more like this" from a card ranks that frame first too
        browser.find_elements(By.CSS_SELECTOR, "#gallery .thumb button")[2].click()
        wait(lambda: "like" in browser.find_element(By.ID, "search-note").text)
        assert console_errors(browser) == []


def test_text_search_ranks_by_the_engines_cosines(browser: Any, tmp_path: Path) -> None:
    pytest.importorskip("open_clip")
    from framesift.engines.models.clip import ClipEmbedder
    from tests.engines.clip_helpers import TINY, tiny_model

    emb = ClipEmbedder(
        TINY, torch_model=tiny_model(0), runtime="torch", device="cpu", cache_dir=str(tmp_path / "c")
    )
    store = tmp_path / "store"
    make_store(store, emb)
    prompt = "a red forklift <script>window.__xss=1</script>"
    with FrameStore(store, readonly=True) as fs:
        expected = top_k(fs, emb.embed_texts([prompt])[0], 24, model=emb.model_id)
    with serving(store_dir=store, embedder_factory=lambda: emb) as base:
        browser.get(base + "/frames")
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".thumb"))
        browser.find_element(By.ID, "q").send_keys(prompt)
        browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
        wait(lambda: "ranked" in browser.find_element(By.ID, "search-note").text)
        cards = browser.find_elements(By.CSS_SELECTOR, "#gallery .thumb")
        shown = [
            (c.get_attribute("data-id"), float(c.find_element(By.CSS_SELECTOR, ".score").text.split()[1]))
            for c in cards
        ]
        browser.save_screenshot(str(tmp_path / "text-search.png"))
        assert [i for i, _ in shown] == [i for i, _ in expected]
        assert [s for _, s in shown] == pytest.approx([s for _, s in expected], abs=1e-4)
        assert prompt in browser.find_element(By.ID, "search-note").text  # shown as text
        assert browser.execute_script("return window.__xss") is None


def test_source_added_from_the_form_appears_live_and_hostile_text_is_text(
    browser: Any, clip: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    make_store(store, PixelEmbedder())
    cfg = parse_config({"sources": [{"type": "file", "id": "a", "path": str(clip), "realtime": True, "loop": True}],
                        "metrics": {"port": 0}})  # fmt: skip
    with Pipeline(cfg) as p, serving(pipeline=p, control=True, store_dir=store) as base:
        browser.get(base + "/live")
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".card[data-source=a]"))
        browser.find_element(By.ID, "add-type").send_keys("file")
        browser.find_element(By.ID, "add-id").send_keys("yard-2")
        browser.find_element(By.ID, "add-input").send_keys(str(clip))
        browser.find_element(By.CSS_SELECTOR, "#add-form button").click()
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".card[data-source=yard-2] img[src]"))
        wait(
            lambda: (
                browser.find_element(By.CSS_SELECTOR, ".card[data-source=yard-2] img").get_property(
                    "naturalWidth"
                )
                > 0
            )
        )
        assert "yard-2" in p.status().sources
        # a hostile id is refused with its message shown as text
        browser.find_element(By.ID, "add-id").clear()
        browser.find_element(By.ID, "add-id").send_keys(XSS)
        browser.find_element(By.CSS_SELECTOR, "#add-form button").click()
        wait(lambda: "source: id" in browser.find_element(By.ID, "add-result").text)
        browser.save_screenshot(str(tmp_path / "live.png"))
        logged = [e["message"] for e in browser.get_log("browser")]
        assert all("/sources" in m and "400" in m for m in logged), logged  # the refusal, nothing else
        # kept frames whose source and reason are markup: shown as text
        browser.get(base + "/frames")
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".thumb"))
        metas = " ".join(m.text for m in browser.find_elements(By.CSS_SELECTOR, ".thumb .meta"))
        assert XSS in metas
        browser.save_screenshot(str(tmp_path / "frames-xss.png"))
        assert browser.execute_script("return window.__xss") is None
        assert console_errors(browser) == []
