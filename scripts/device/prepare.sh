#!/usr/bin/env bash
# Here, before a session's one call to a lent GPU machine (see DEVELOPERS.md): puts the
# wheels its Python 3.12 lacks in .whl/ and Fashion-MNIST in .data/ (both git-ignored);
# the call names both in `carry`. Needs pip's registry once; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl .data/fashion-mnist
py=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)
# fvcore ships only as a source archive: build its (pure Python) wheel here
[ -n "$(ls .whl/fvcore-*.whl 2>/dev/null)" ] || python3 -m pip wheel -q --no-deps -w .whl "fvcore>=0.1.5.post20221221"
for name in iopath yacs termcolor; do
    [ -n "$(ls .whl/${name}-*.whl 2>/dev/null)" ] || python3 -m pip download -q "${py[@]}" -d .whl "$name"
done
cp -n /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
du -sh .whl .data
