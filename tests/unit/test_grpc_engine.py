"""Each service picks gRPC's I/O engine before gRPC loads: set any later, the setting
would do nothing, and nothing would say so."""

import subprocess
import sys

import pytest
from jobsched_common.grpc_engine import POLLING_ENDPOINTS

# Run in a fresh interpreter: reports what GRPC_EXPERIMENTS held when `grpc` was first
# imported, while importing the module named in argv[1].
SEEN_AT_GRPC_IMPORT = """
import importlib, importlib.abc, os, sys

class Watch(importlib.abc.MetaPathFinder):
    seen = "grpc never imported"
    def find_spec(self, name, path, target=None):
        if name == "grpc" and Watch.seen == "grpc never imported":
            Watch.seen = os.environ.get("GRPC_EXPERIMENTS", "unset")
        return None

sys.meta_path.insert(0, Watch())
importlib.import_module(sys.argv[1])
print(Watch.seen)
"""

MAINS = ["jobsched_scheduler.main", "jobsched_runner.main", "jobsched_gateway.main"]


def seen_at_grpc_import(module: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SEEN_AT_GRPC_IMPORT, module],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize("module", MAINS)
def test_a_service_sets_the_engine_before_grpc_loads(module: str) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    assert seen_at_grpc_import(module, env) == POLLING_ENDPOINTS


def test_an_operators_own_setting_wins() -> None:
    env = {"PATH": "/usr/bin:/bin", "GRPC_EXPERIMENTS": "event_engine_client"}
    assert seen_at_grpc_import("jobsched_scheduler.main", env) == "event_engine_client"
