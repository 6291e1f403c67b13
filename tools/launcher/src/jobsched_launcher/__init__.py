"""The whole system on one machine as processes: `make run`, and the throwaway systems
of the tests and benchmarks."""

from .system import (
    LocalSystem,
    clean_env,
    configured_database,
    embedded_postgres,
    free_port,
    http_ok,
    port_open,
    throwaway_system,
    wait_for,
)

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
