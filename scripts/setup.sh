#!/usr/bin/env bash
# Installs what valley3 needs on a fresh Debian/Ubuntu CPU machine: system tools, then the package.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# ffmpeg: PyAV fallback decoding and test media; espeak-ng: the demo's spoken descriptions;
# a JRE: METEOR / PTB tokenisation in caption metrics.
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v java >/dev/null || missing+=(default-jre-headless)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]}: the demo speech, video tests and caption metrics need them" >&2
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
