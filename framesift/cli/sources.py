"""``framesift sources list|add|remove``: live control of a running pipeline's sources over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from framesift.errors import EXIT_OK, ConfigError, FramesiftError

TOKEN_ENV = "FRAMESIFT_CONTROL_TOKEN"
DEFAULT_URL = "http://127.0.0.1:9464"


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sources",
        help="list, add or remove sources of a running pipeline",
        description="Talk to a running pipeline's live-control API (served next to /metrics). "
        f"The bearer token comes from --token or ${TOKEN_ENV}.",
    )
    sub = p.add_subparsers(dest="sources_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--url",
            dest="urls",
            action="append",
            default=[],
            help=f"the pipeline's metrics/control URL (default {DEFAULT_URL}); on `add`, a second --url "
            "(or an rtsp:// one) is the source's URL",
        )
        sp.add_argument("--api", default=None, help="the pipeline's URL (same as the first --url)")
        sp.add_argument("--token", default=None, help=f"bearer token (default ${TOKEN_ENV})")
        sp.add_argument("--timeout", type=float, default=60.0, metavar="S", help="request timeout in seconds")

    ls = sub.add_parser("list", help="list sources with their state")
    common(ls)
    ls.add_argument("--json", action="store_true", help="print the JSON document")
    ls.set_defaults(func=cmd_list)

    add = sub.add_parser(
        "add",
        help="add a source",
        description="Add a source: SPEC is a YAML/JSON file or an inline snippet, e.g. "
        "'{type: rtsp, id: cam9, url: \"rtsp://10.0.0.9/stream\"}'; or give --type and --url/--path.",
    )
    common(add)
    add.add_argument("spec", nargs="?", help="YAML/JSON source config (a file or inline text)")
    add.add_argument("--type", dest="source_type", help="source type (rtsp, http, file, device, images)")
    add.add_argument("--src", dest="source_url", help="the stream URL (rtsp/http); or a second --url")
    add.add_argument("--path", help="file or image folder (file, images)")
    add.add_argument("--device", help="capture device (device)")
    add.add_argument("--id", dest="source_id", help="source id")
    add.set_defaults(func=cmd_add)

    rm = sub.add_parser("remove", help="remove a source (its events are flushed first)")
    common(rm)
    rm.add_argument("id", help="source id")
    rm.set_defaults(func=cmd_remove)


def _split_urls(args: argparse.Namespace) -> None:
    """Sort ``--url`` values into the pipeline's address (``args.url``) and, on ``add``, the
    source's URL: ``add --url http://127.0.0.1:9464 --type rtsp --url rtsp://cam/1``."""
    urls = list(args.urls)
    api = args.api
    source_url = getattr(args, "source_url", None)
    for u in urls:
        is_stream = u.split("://", 1)[0].lower() in ("rtsp", "rtsps")
        if hasattr(args, "source_url") and (is_stream or (api is not None and source_url is None)):
            source_url = source_url or u
        elif api is None:
            api = u
        else:
            raise ConfigError(f"--url given too often ({', '.join(urls)}); use --api for the pipeline")
    args.url = api or DEFAULT_URL
    if hasattr(args, "source_url"):
        args.source_url = source_url


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> dict[str, Any]:
    import httpx

    if not hasattr(args, "url"):
        _split_urls(args)

    token = args.token or os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = args.url.rstrip("/") + path
    try:
        r = httpx.request(method, url, json=body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        raise FramesiftError(
            f"cannot reach the pipeline at {args.url}: {exc} (is `framesift run` up, with metrics "
            "enabled? pass its address with --url)"
        ) from None
    try:
        doc: dict[str, Any] = r.json()
    except ValueError:
        doc = {"error": r.text.strip()}
    if r.status_code == 401:
        raise ConfigError(
            f"{args.url}: {doc.get('error', 'unauthorized')} (pass --token or set ${TOKEN_ENV})"
        )
    if r.status_code == 400:
        raise ConfigError(str(doc.get("error", r.text)))
    if r.status_code >= 400:
        if r.status_code == 404 and "error" not in doc:
            doc["error"] = f"{url} not found (is the control API enabled: metrics.control?)"
        raise FramesiftError(f"{method} {path}: {r.status_code}: {doc.get('error', r.text)}")
    return doc


def cmd_list(args: argparse.Namespace) -> int:
    doc = _request(args, "GET", "/sources")
    if args.json:
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    sources = doc.get("sources", {})
    fleet = any(s.get("node") for s in sources.values())  # a fleet (run --ray): where each one runs
    rows = [("ID", "TYPE", "STATE", "FPS", "DECODED", "RECONNECTS", "DROPS") + (("NODE",) if fleet else ())]
    for sid, s in sources.items():
        drops = ",".join(f"{k}={v}" for k, v in sorted(s.get("drops", {}).items())) or "-"
        row = (
            sid,
            s["type"],
            s["state"],
            f"{s['fps']:.1f}",
            str(s["frames_decoded"]),
            str(s["reconnects"]),
            drops,
        )
        rows.append(row + ((s.get("node") or "-",) if fleet else ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


def source_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The source config mapping from SPEC (file or inline YAML/JSON) and/or the flags."""
    data: dict[str, Any] = {}
    if args.spec:
        text = args.spec
        p = Path(text)
        if len(text) < 4096 and "\n" not in text and p.is_file():
            text = p.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"source spec: malformed YAML/JSON: {str(exc).splitlines()[0]}") from None
        if isinstance(loaded, list) and len(loaded) == 1:
            loaded = loaded[0]
        if isinstance(loaded, dict) and "sources" in loaded and isinstance(loaded["sources"], list):
            if len(loaded["sources"]) != 1:
                raise ConfigError("source spec: give exactly one source")
            loaded = loaded["sources"][0]
        if not isinstance(loaded, dict):
            raise ConfigError("source spec: expected a mapping such as {type: rtsp, url: rtsp://...}")
        data.update(loaded)
    for key, value in (
        ("type", args.source_type),
        ("url", args.source_url),
        ("path", args.path),
        ("device", args.device),
        ("id", args.source_id),
    ):
        if value is not None:
            data[key] = value
    if not data:
        raise ConfigError("sources add: give a source spec (YAML/JSON) or --type with --src/--path/--device")
    return data


def cmd_add(args: argparse.Namespace) -> int:
    _split_urls(args)
    doc = _request(args, "POST", "/sources", source_spec(args))
    st = doc.get("status", {})
    print(f"added {doc['id']} ({st.get('type', '?')}, {st.get('state', '?')})")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    doc = _request(args, "DELETE", f"/sources/{args.id}")
    st = doc.get("status", {})
    print(f"removed {doc['id']} ({st.get('frames_staged', 0)} frames processed)", file=sys.stdout)
    return EXIT_OK
