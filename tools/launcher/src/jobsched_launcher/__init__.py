"""The whole system on one machine as supervised processes: `make run` (`main`), and the
throwaway systems of the tests and benchmarks (`LocalSystem`, `throwaway_system`)."""

from .postgres import configured_database, embedded_postgres
from .probes import free_port, http_ok, port_open, wait_for
from .system import LocalSystem, clean_env, throwaway_system

__all__ = [
    "LocalSystem",
    "clean_env",
    "configured_database",
    "embedded_postgres",
    "free_port",
    "http_ok",
    "port_open",
    "throwaway_system",
    "wait_for",
]
