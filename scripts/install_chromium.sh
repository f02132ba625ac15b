#!/usr/bin/env bash
# Install Debian's Chromium for the web app's browser tests (tests/web, Playwright drives it through
# executable_path). Playwright must never download a browser of its own: the system's package is the one
# under test, and the machines reach only package registries. Skipped when /usr/bin/chromium is already there;
# without root (and no chromium) it says so and the browser tests skip themselves.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install_chromium.sh: /usr/bin/chromium is missing and this is not root: the browser tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
