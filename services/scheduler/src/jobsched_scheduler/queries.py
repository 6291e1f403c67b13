"""Named SQL queries, loaded once from the `.sql` files beside this module."""

import re
from functools import cache
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+)\n(?:--[^\n]*\n)*", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Splits a file of `-- name: x` sections into {name: sql}."""
    parts = _HEADER.split(text)
    return {name: sql.strip() for name, sql in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def queries() -> dict[str, str]:
    """Every named query of the `.sql` files in `sql/` (migrations aside)."""
    found: dict[str, str] = {}
    for entry in files(__package__).joinpath("sql").iterdir():
        if entry.name.endswith(".sql"):
            for name, sql in parse(entry.read_text()).items():
                assert name not in found, f"query {name} is named twice"
                found[name] = sql
    return found


def q(name: str) -> bytes:
    return queries()[name].encode()


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, sql) for every numbered migration, in order."""
    folder = files(__package__).joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(found)
