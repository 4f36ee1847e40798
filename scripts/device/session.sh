#!/usr/bin/env bash
# There: one prepared pass over everything that needs a GPU, sized for one call of about
# 9 minutes (STUDY_S sets the training share). Run as the command of one `run` call:
#   bash scripts/device/session.sh        carry: [".whl", ".data"]
# Leaves $OUT/session.log and $OUT/results.tgz (the run records, tables and benchmark
# output it wrote; no checkpoints but the seed-0 models the notebooks read).
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?run this through the device tool, which sets OUT}"
STUDY_S=${STUDY_S:-330}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
touch .session-start
step() { echo "== $(date -u +%T) $*"; }
{
    step "device"; nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
    step "GPU tests"; timeout 150 python3 -m pytest -q -m gpu tests/test_gpu.py -x -p no:cacheprovider
    step "latency --width (fair comparison: width x1.00 against FFFF)"
    timeout 100 python3 cli.py latency --arch resnet50 --device cuda --width --output "$OUT/latency-width-cuda.csv"
    step "engine throughput"; timeout 100 python3 benchmarks/engine_throughput.py --device cuda
    step "study for ${STUDY_S} s, then Ctrl-C (every running run saves its checkpoint)"
    timeout -s INT "$STUDY_S" python3 cli.py reproduce table1 fig4 --preset mini --seeds 3 --arch resnet_mini \
        --device cuda --jobs 12 --data-path .data/fashion-mnist --no-progress
    step "done"
} 2>&1 | tee "$OUT/session.log"
# what this call wrote, without checkpoints (the seed-0 models excepted, as in .gitignore)
find results -newer .session-start -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.csv' -o -name '*.md' \
    -o -name '*.png' -o -name '*.pdf' -o -path '*-s0-*/model.pt' \) -print0 | tar czf "$OUT/results.tgz" --null -T -
tar tzf "$OUT/results.tgz" | wc -l
