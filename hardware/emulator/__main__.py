"""Entry point of ``python -m hardware.emulator`` (log output to stderr: stdout carries the port)."""

import logging
import sys

import structlog

from hardware.emulator.cli import main

structlog.configure(
    logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
)
sys.exit(main())
