#!/usr/bin/env bash
# Regenerates the committed Python code and type stubs from protos/jobsched/v1/*.proto.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=$(command -v "${PYTHON:-python3}")
[[ $python == /* ]] || python="$PWD/$python"  # make passes .venv/bin/python; we cd below
bin=$(dirname "$python")
cd "$here"
rm -f jobsched/v1/*_pb2*.py jobsched/v1/*_pb2*.pyi
PATH="$bin:$PATH" "$python" -m grpc_tools.protoc -I . \
  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
  jobsched/v1/*.proto
