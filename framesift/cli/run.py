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
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run the live sources as a fleet on a Ray cluster: local, auto or HOST:PORT "
        "(overrides the config's cluster.ray; docs/scale.md)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar / status lines")
    p.add_argument(
        "--metrics-port", type=int, default=None, metavar="N", help="override metrics.port (0 = free)"
    )
    p.add_argument(
        "--status-interval", type=float, default=10.0, metavar="S", help="seconds between live status lines"
    )
    p.add_argument(
        "--log-format",
        dest="run_log_format",
        choices=["plain", "json"],
        default=None,
        help="override the config's log.format",
    )
    p.add_argument(
        "--log-level",
        dest="run_log_level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="override the config's log.level",
    )
    p.set_defaults(func=cmd_run)


def _flag_given(name: str, argv: list[str] | None = None) -> bool:
    """Whether the global ``--log-format``/``--log-level`` was on the command line (its parser
    default cannot tell "not given" from the default value)."""
    argv = sys.argv[1:] if argv is None else argv
    return any(a == name or a.startswith(name + "=") for a in argv)


def log_settings(args: argparse.Namespace, level: str, fmt: str) -> tuple[str, str]:
    """(level, format): a command-line flag wins over the config's ``log:`` block."""
    if getattr(args, "run_log_level", None):
        level = args.run_log_level
    elif _flag_given("--log-level"):
        level = args.log_level
    if getattr(args, "run_log_format", None):
        fmt = args.run_log_format
    elif _flag_given("--log-format"):
        fmt = args.log_format
    return level, fmt


def cmd_run(args: argparse.Namespace) -> int:
    from framesift.cli.runner import Runnable, run_pipeline
    from framesift.config import ClusterConfig
    from framesift.errors import ConfigError
    from framesift.pipeline import Pipeline

    cfg = load_config(args.config)
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port: {args.metrics_port} is not a port (0..65535)")
        cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"port": args.metrics_port})})
    if args.ray is not None:
        cluster = {"ray": args.ray} if cfg.cluster is None else {**cfg.cluster.model_dump(), "ray": args.ray}
        cfg = cfg.model_copy(update={"cluster": ClusterConfig.model_validate(cluster)})
    setup_logging(*log_settings(args, cfg.log.level, cfg.log.format))
    if cfg.cluster is not None:
        from framesift.cluster.fleet import Fleet

        runnable: Runnable = Fleet(cfg)  # refuses what a fleet cannot run before it joins the cluster
    else:
        runnable = Pipeline(cfg)
    stopped_by = run_pipeline(runnable, progress=not args.no_progress, status_interval_s=args.status_interval)
    if stopped_by == signal.SIGINT:
        print("framesift: interrupted (drained and flushed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
