"""Log lines in the original daemon's format, tagged with the service name."""

import logging
import sys


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            fmt=f"%(asctime)s {service} %(levelname)s %(message)s",
            datefmt="%Y/%m/%d %H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
