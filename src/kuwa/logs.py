"""Logging set-up shared by every process: one format, and no secrets at DEBUG."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, process: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{process}] %(name)s: %(message)s",
    )
    # peewee logs every query's parameters at DEBUG (token digests among them): keep it quiet.
    logging.getLogger("peewee").setLevel(max(logging.INFO, logging.root.level))
