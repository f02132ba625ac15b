#!/usr/bin/env bash
# Install the npm packages of the test fixture tests/fixtures/npm_program (moment, luxon), exactly as
# pinned by its committed package-lock.json. Run before the test suite (CI does); without it the test
# that requires real npm packages is skipped. node_modules/ is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures/npm_program"
npm ci --no-audit --no-fund --ignore-scripts
