#!/usr/bin/env bash
# Installs the external tools the test suite drives when they are missing:
#   prometheus (Debian package `prometheus`: /usr/bin/prometheus and /usr/bin/promtool)
#   prometheus-alertmanager (Debian package of that name)
#   chromium   (Debian package `chromium`: /usr/bin/chromium, run headless; the status page's
#              actions are driven over its DevTools protocol, so no chromium-driver)
# Idempotent: a tool already on PATH is left alone, and `apt-get update` runs at most
# once, only when something has to be installed. Installing needs root; without it the
# script says what is missing and exits 0, so the tests decide (outside CI they skip
# with a reason; with CI=true a missing tool fails them).
set -euo pipefail

declare -A package_of=([promtool]=prometheus [prometheus]=prometheus [prometheus-alertmanager]=prometheus-alertmanager [chromium]=chromium)
missing_packages=()
for tool in promtool prometheus prometheus-alertmanager chromium; do
  if command -v "$tool" >/dev/null 2>&1; then
    echo "ensure-tools: $tool present ($(command -v "$tool"))"
  else
    package=${package_of[$tool]}
    echo "ensure-tools: $tool missing (Debian package $package)"
    if [[ " ${missing_packages[*]} " != *" $package "* ]]; then
      missing_packages+=("$package")
    fi
  fi
done

if [[ ${#missing_packages[@]} -eq 0 ]]; then
  echo "ensure-tools: nothing to install"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "ensure-tools: not root, not installing ${missing_packages[*]};" \
       "run: sudo apt-get install -y --no-install-recommends ${missing_packages[*]}"
  exit 0
fi

echo "ensure-tools: apt-get update"
apt-get update -qq
echo "ensure-tools: apt-get install ${missing_packages[*]}"
# The prometheus package starts its own service on :9090 where an init system runs;
# policy-rc.d 101 keeps maintainer scripts from starting daemons during the install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap 'if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing_packages[@]}"
for tool in promtool prometheus prometheus-alertmanager chromium; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ensure-tools: $tool still missing" >&2; exit 1; }
done
echo "ensure-tools: installed ${missing_packages[*]}"
