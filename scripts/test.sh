#!/usr/bin/env bash
# Install everything the tests need, then run ruff, mypy and the whole pytest
# suite. Extra arguments go to pytest (e.g. scripts/test.sh tests/router -x).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite drives for real (only installed when missing).
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)  # benchmark smoke run
command -v promtool >/dev/null || missing+=(prometheus)  # p99 -> HPA pipeline, end to end
command -v openssl >/dev/null || missing+=(openssl)  # certificates for the HTTPS upstream test
command -v redis-server >/dev/null || missing+=(redis-server)  # shared budgets, limits and cache
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]}; tests that need them will be skipped" >&2
  fi
fi

./scripts/bootstrap.sh dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check .
echo "== mypy"; mypy && (cd benchmarks && mypy --no-explicit-package-bases ./*.py)  # scripts: own import root
echo "== pytest"; python -m pytest "$@"
