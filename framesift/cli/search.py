"""``framesift search "a forklift carrying a pallet" --store DIR``: rank kept frames by similarity."""

from __future__ import annotations

import argparse
from typing import Any

from framesift.errors import EXIT_OK, ConfigError


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "search",
        help="find kept frames by text or example image (same model as the store)",
        description="Rank the frames of a frame store by cosine similarity to a text query (needs a store "
        "collected with CLIP) or to --image FILE (any store), and print them; --html writes a gallery.",
    )
    p.add_argument("query", nargs="?", default=None, help="text query, e.g. 'a forklift carrying a pallet'")
    p.add_argument("--store", required=True, metavar="DIR", help="frame store (DIR or DIR/store of collect)")
    p.add_argument("-k", type=int, default=20, help="number of results (default 20)")
    p.add_argument("--source", default=None, help="only frames of this source")
    p.add_argument(
        "--since", default=None, metavar="T", help="only frames captured since T: 2h, 7d, or ISO time"
    )
    p.add_argument("--image", default=None, metavar="FILE", help="query by example image instead of text")
    p.add_argument("--html", default=None, metavar="FILE", help="also write an HTML gallery of the results")
    p.add_argument("--model", default=None, help="embedding model to search when the store holds several")
    p.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from framesift.store import resolve_store_dir
    from framesift.store.search import format_hits, parse_since, search, write_html

    if (args.query is None) == (args.image is None):
        raise ConfigError("search: give a text QUERY or --image FILE (exactly one)")
    if args.k < 1:
        raise ConfigError(f"-k: {args.k} must be ≥ 1")
    store = resolve_store_dir(args.store)
    since = None if args.since is None else parse_since(args.since)
    hits = search(
        store, text=args.query, image=args.image, k=args.k, source=args.source, since=since, model=args.model
    )
    print(format_hits(hits, store))
    if args.html:
        page = write_html(hits, store, args.html, args.query or f"image: {args.image}")
        print(f"gallery: {page}")
    return EXIT_OK
