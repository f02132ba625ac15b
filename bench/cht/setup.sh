#!/usr/bin/env bash
# Installs CHT's own code (cht-conf 6.6.1, cht-conf-test-harness 5.0.4 with cht-core 4.11's rules-engine) for the
# benchmark driver into a scratch folder OUTSIDE the tracked tree (default bench/.work/cht, git-ignored).
#   bench/cht/setup.sh [DEST]
# Install scripts are skipped: nothing the driver uses needs them (puppeteer's Chromium download in particular).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${1:-$HERE/../.work/cht}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
if [ -f "$DEST/node_modules/cht-conf-test-harness/package.json" ] && [ -f "$DEST/node_modules/cht-conf/package.json" ] \
   && cmp -s "$HERE/package.json" "$DEST/package.json"; then
  echo "cht driver dependencies already installed in $DEST"
  exit 0
fi
cp "$HERE/package.json" "$DEST/package.json"
if [ -f "$HERE/package-lock.json" ]; then
  cp "$HERE/package-lock.json" "$DEST/package-lock.json"
  CMD=ci
else
  CMD=install
fi
echo "installing cht-conf@6.6.1 + cht-conf-test-harness@5.0.4 into $DEST (npm $CMD) ..."
cd "$DEST"
PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 \
  npm "$CMD" --ignore-scripts --no-audit --no-fund --loglevel=error
node -e "for (const p of ['cht-conf', 'cht-conf-test-harness']) console.log(p, require(p + '/package.json').version)"
