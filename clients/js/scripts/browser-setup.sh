#!/usr/bin/env bash
# Installs what the browser end-to-end test needs on a clean Debian machine
# (CI runs as root): Debian's chromium when /usr/bin/chromium is missing, and
# the npm packages (playwright-core, which downloads no browser of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" != 0 ]; then
    # Not root (a developer's machine): the browser test skips itself and says why.
    echo "browser-setup: /usr/bin/chromium is missing and this is not root: install Debian's chromium (apt-get install chromium)" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
fi
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.collabd-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" > "$stamp"
fi
