#!/usr/bin/env bash
# Install Debian's PostgreSQL server if it is missing, for the store tests on the PostgreSQL backend.
# The tests start a throwaway cluster of their own (tests/conftest.py): nothing is started here, and
# the package's default cluster is left as Debian sets it up. Needs root (CI and the dev machines run as root).
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_postgres.sh: PostgreSQL is not installed and this is not root: run 'sudo apt-get install postgresql'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
