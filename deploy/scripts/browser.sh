#!/usr/bin/env bash
# Make sure a headless Chromium and its WebDriver are installed, for the console's browser tests.
#   deploy/scripts/browser.sh        (called by `make test`; installs with apt-get when missing)
# Debian's chromium and chromium-driver are used because no browser can be downloaded at test
# time; fonts-wqy-zenhei draws the console's Chinese pages in the screenshots.
set -euo pipefail
# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHROMIUM="${CHROMIUM_BINARY:-/usr/bin/chromium}"
DRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"

if [[ -x "$CHROMIUM" && -x "$DRIVER" ]] && fc-list 2>/dev/null | grep -qiE 'wqy|noto sans cjk'; then
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "chromium or chromium-driver missing and not root: apt-get install -y chromium chromium-driver fonts-wqy-zenhei"
log "installing chromium, chromium-driver and a Chinese font with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-wqy-zenhei fontconfig
[[ -x "$CHROMIUM" && -x "$DRIVER" ]] || die "chromium still missing after apt-get install"
