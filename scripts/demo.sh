#!/usr/bin/env bash
# Install modelroute into .venv and run the demo: simulated upstreams and a
# router on localhost. No cluster, no internet beyond PyPI, no API key.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/modelroute demo "$@"
