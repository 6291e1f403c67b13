#!/usr/bin/env bash
# The front-door bench drives the gateway with wrk (Debian's package); install it when
# it is missing.
set -euo pipefail
if command -v wrk >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "wrk is missing: install it with 'sudo apt-get install -y wrk'" >&2
  exit 1
fi
echo "Installing wrk for the front-door bench..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
