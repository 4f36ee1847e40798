#!/usr/bin/env bash
# Sets up a fresh machine for adn-repro; safe to run again (does only what is missing).
#  - Fashion-MNIST, the default data set: Debian's dataset-fashion-mnist (when run as root with apt);
#    elsewhere the toolkit falls back to torchvision's download on first use.
#  - .venv with the project and its test tools (pip; torch is pinned in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's dataset-fashion-mnist"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup: /usr/share/datasets/fashion-mnist is missing (run as root to install it with apt);" \
             "Fashion-MNIST will be downloaded by torchvision on first use"
    fi
fi

stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing the Python environment in .venv (about 2 minutes)"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
