"""``framesift run CONFIG``: run a pipeline until its files end or it is interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from framesift.config import load_config
from framesift.errors import EXIT_INTERRUPTED, EXIT_OK
from framesift.log import setup_logging

log = logging.getLogger("framesift.cli")


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a pipeline from a YAML config",
        description="Run a pipeline until every file source has ended; Ctrl-C or SIGTERM drains and "
        "flushes first. Exit codes: 0 ok (also after SIGTERM), 1 runtime failure, 2 config error, "
        "3 input unreadable, 130 interrupted by Ctrl-C.",
    )
    p.add_argument("config", help="pipeline config file (YAML), e.g. configs/file.yaml")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / status lines")
    p.add_argument(
        "--metrics-port", type=int, default=None, metavar="N", help="override metrics.port (0 = free)"
    )
    p.add_argument(
        "--status-interval", type=float, default=10.0, metavar="S", help="seconds between live status lines"
    )
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from framesift.errors import ConfigError
    from framesift.pipeline import Pipeline

    cfg = load_config(args.config)
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port: {args.metrics_port} is not a port (0..65535)")
        cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"port": args.metrics_port})})
    if args.log_level == "info" and args.log_format == "plain":  # command line defaults: config decides
        setup_logging(cfg.log.level, cfg.log.format)
    show = not args.no_progress
    pipeline = Pipeline(cfg, progress=show, status_interval_s=args.status_interval)
    pipeline.run()
    if pipeline.interrupted_by == signal.SIGINT:
        print("framesift: interrupted (drained and flushed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
