#!/usr/bin/env bash
# The real browser for the web tests: Debian's chromium (headless, driven by Playwright) and a CJK
# font so Chinese pages render (and screenshots show text, not boxes); and Debian's prometheus
# package for its promtool (tests/test_alerts.py checks and unit-tests deploy/prometheus/alerts.yml).
#
#   deploy/local/browser.sh up       install chromium, fonts-wqy-zenhei and prometheus if missing (apt-get, first run only)
#   deploy/local/browser.sh status   exit 0 iff all are installed
#
# Idempotent: a machine that has both runs no apt-get at all. Playwright's own browser download is
# never used (tests launch /usr/bin/chromium, ZHENGAI_CHROMIUM overrides the path).
set -euo pipefail

RUN=${ZHENGAI_RUN:-$HOME/.local/state/zhengai}
PACKAGES=(chromium fonts-wqy-zenhei prometheus)  # prometheus: for promtool only (its daemon is not used)

log() { echo "browser: $*" >&2; }
die() { echo "browser: ERROR: $*" >&2; exit 1; }

missing() {
  local p out=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[@]:-}"
}

case ${1:-} in
  up)
    todo=$(missing)
    if [[ -z $todo ]]; then
      log "${PACKAGES[*]} present"
      exit 0
    fi
    sudo=()
    if [[ $EUID -ne 0 ]]; then
      command -v sudo >/dev/null || die "missing: $todo, and there is no sudo: apt-get install -y $todo"
      sudo=(sudo -n)
    fi
    mkdir -p "$RUN"
    aptlog=$RUN/apt-browser.log t0=$SECONDS
    log "installing $todo from Debian (first run only; apt log: $aptlog) ..."
    # shellcheck disable=SC2086 — $todo is a list of package names
    if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
           && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $todo; } \
           >"$aptlog" 2>&1; then
      tail -n 30 "$aptlog" >&2
      die "apt-get could not install $todo"
    fi
    log "installed in $((SECONDS - t0))s"
    ;;
  status)
    [[ -z $(missing) ]]
    ;;
  *)
    echo "usage: $0 {up|status}" >&2
    exit 2
    ;;
esac
