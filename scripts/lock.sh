#!/usr/bin/env bash
# Re-resolves constraints.txt: a brand-new virtual environment gets valley3[dev] with only the torch
# family pinned, its tests' imports are checked, and its exact package set becomes the new constraints.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
py="$tmp/venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
grep -E '^torch(vision|audio)?==' constraints.txt > "$tmp/family.txt"
"$py" -m pip install -q --disable-pip-version-check -c "$tmp/family.txt" -e ".[dev]"
"$py" -c "import torch, torchaudio, torchvision, valley3.cli"
{
  sed -n '1,/^# Regenerate/p' constraints.txt
  "$py" -m pip freeze | grep -v -E '^(-e |valley3|pip==|setuptools==|wheel==)' | sed 's/+cu[0-9]*$//'
} > "$tmp/constraints.txt"
mv "$tmp/constraints.txt" constraints.txt
echo "lock: constraints.txt has $(grep -vc '^#' constraints.txt) packages"
