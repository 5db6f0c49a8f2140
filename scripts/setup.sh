#!/usr/bin/env bash
# Installs the Debian packages the build needs, only those missing, and checks for Swift.
# Idempotent; works as root on a fresh machine (uses sudo otherwise).
set -euo pipefail

packages=(libopenblas-dev libnng-dev libmbedtls-dev libdnnl-dev pkg-config)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    for dir in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [ -x "$dir/swift" ] && export PATH="$dir:$PATH" && break
    done
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "setup: Swift 6 is required but 'swift' is not on PATH (install a Swift 6 toolchain from swift.org)" >&2
    exit 1
fi
