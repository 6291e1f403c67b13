"""The committed generated code is what `make protos` would write now."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_proto_sources(tmp_path: Path) -> None:
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    subprocess.run(
        ["bash", str(copy / "generate.sh")],
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    generated = sorted((copy / "jobsched" / "v1").glob("*_pb2*"))
    assert generated, "the generator wrote nothing"
    for path in generated:
        committed = ROOT / "protos" / "jobsched" / "v1" / path.name
        assert committed.exists(), f"{path.name} is not committed: run `make protos`"
        assert committed.read_text() == path.read_text(), f"{path.name} is stale: run `make protos`"
