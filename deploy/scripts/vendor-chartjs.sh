#!/usr/bin/env bash
# Refresh the console's copy of Chart.js from the npm registry (a maintainer's task, never run at
# build or run time: the console serves the copy kept in the repository).
#   deploy/scripts/vendor-chartjs.sh [VERSION]      default: the version the repository pins
# After changing VERSION, update the digest in tests/unit/test_console_words.py.
set -euo pipefail
# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VERSION="${1:-4.6.1}"
TARGET="$ROOT_DIR/services/api/console/static/vendor"
command -v npm >/dev/null || die "npm is needed to fetch chart.js"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf chart.js-*.tgz)
cp "$work/package/dist/chart.umd.min.js" "$TARGET/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$TARGET/chart.js.LICENSE.md"
log "chart.js $VERSION: $(sha256sum "$TARGET/chart.umd.min.js" | cut -d' ' -f1)"
