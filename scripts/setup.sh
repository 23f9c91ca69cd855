#!/usr/bin/env bash
# Installs valley3 on a fresh Debian/Ubuntu machine: system tools, then the package into a virtual
# environment. Idempotent and quick when everything is already there.
#
# Where it installs:
#   VALLEY3_VENV=DIR   create (if missing) and use the virtual environment DIR (.ci/run uses a new one)
#   an active venv     ($VIRTUAL_ENV set) is used as it is
#   otherwise          ./.venv next to this repository (created with the python3 on PATH)
# The torch family and every other dependency resolve through constraints.txt, a set that was
# installed together on a brand-new environment and tested; see README "Dependencies".
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

if [ -n "${VALLEY3_VENV:-}" ]; then
  venv="$VALLEY3_VENV"
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  venv="$VIRTUAL_ENV"
else
  venv="$PWD/.venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating the virtual environment $venv"
  python3 -m venv "$venv" || {
    echo "setup: 'python3 -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  }
fi
py="$venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
"$py" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
# Fail here, not in the first command, if the torch family does not load together.
"$py" -c "import torch, torchaudio, torchvision; print('setup: torch', torch.__version__, '| torchaudio', torchaudio.__version__, '| torchvision', torchvision.__version__, '| in', '$venv')"
