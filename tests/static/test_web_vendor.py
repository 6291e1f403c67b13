"""The chart library is served from web/ itself, never a CDN: every file the page asks
for under vendor/ is there, with the library's license beside it."""

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
VENDOR = re.compile(r"""["'](?:\./)?(vendor/[\w./-]+)["']""")


def test_vendored_files_the_page_loads_exist_with_their_license() -> None:
    sources = [WEB / "index.html", *WEB.glob("*.js")]
    wanted = {match for path in sources for match in VENDOR.findall(path.read_text())}
    assert wanted, "the page loads nothing from vendor/"
    for relative in wanted:
        path = WEB / relative
        assert path.is_file(), f"{relative} is loaded by the page but not in web/"
        assert (path.parent / "LICENSE").is_file(), f"{relative} has no LICENSE beside it"


def test_the_page_loads_nothing_from_another_origin() -> None:
    for path in [WEB / "index.html", *WEB.glob("*.js")]:
        text = path.read_text()
        found = re.findall(r"""(?:src|href)=["']https?://|import\(["']https?://""", text)
        assert not found, f"{path.name} loads from another origin: {found}"
