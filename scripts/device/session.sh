#!/usr/bin/env bash
# There: one prepared pass over everything that needs a GPU, sized for one `run` call with
# timeout_s 560 (the device time of a session is 15 minutes, start-up included):
#   bash scripts/device/session.sh        carry: [".whl", ".data"]
# 1. a smoke run of each study architecture on the GPU (if one fails, nothing else trains
#    and the call ends early, leaving device time to try again);
# 2. on the quiet GPU: the GPU tests (-x, failures printed), then the timings of table 2 and
#    figures 5 and 6 (cached as results/<preset>/measurements/*-cuda.*; fig6a's is what
#    `latency --arch resnet50 --width --device cuda` measures). Once every timing is cached,
#    nothing needs a quiet GPU: the timings are not drawn there and the tests run beside
#    the training;
# 3. the study's runs until BUDGET_S seconds after the start; then Ctrl-C: every running run
#    saves its checkpoint. TRAIN_ARGS: `reproduce` arguments of pools; ';' separates stages
#    run one after another, '&' pools of one stage run together. A pool without its own
#    --jobs gets --jobs JOBS;
# 4. $OUT/records.tgz (what was written under results/, no checkpoints), $OUT/checkpoints-N.tgz
#    (unfinished runs, furthest first, as many as the tool brings back) and $OUT/session.log.
# Locally, to test it (in a copy of the tree: its pools write under results/):
#   OUT=/tmp/out DEVICE=cpu JOBS=2 BUDGET_S=200 bash scripts/device/session.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?run this through the device tool, which sets OUT}"
DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-12}
BUDGET_S=${BUDGET_S:-500}
# The next stage starts when one ends with time to spare. A run whose checkpoint stayed
# behind fails at once there ("no checkpoint to resume from") and its pool goes on without it.
# Left after 2026-11-28: two of mobilenet_v2_mini's table 1 runs, seed 2's ADN and individual
# FFFFF (ADN the longer: about 85 s per epoch with twelve runs at once, so maybe two calls;
# unpack between them, step 3 of DEVELOPERS.md); the other pools find nothing to train and
# end at once.
TRAIN_ARGS=${TRAIN_ARGS:-table1 --preset mini --seeds 3 --arch mobilenet_v2_mini --jobs 5 & table3 table4 fig6 --preset mini --seeds 2 --arch resnet_mini --jobs 2 & fig7 --preset mini --seeds 2 --jobs 1}
START=$(date +%s)
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
# the records name the commit they were trained on. The machine's git may hold another
# commit than the tree it was sent (seen 2026-11-27: the session's first commit, "dirty"),
# so the caller names it: COMMIT=<sha> bash scripts/device/session.sh, from a clean checkout
if [ -n "${COMMIT:-}" ]; then
    export ADN_REPRO_GIT="{\"commit\": \"$COMMIT\", \"dirty\": false}"
fi
touch .session-start
rm -f /tmp/train.log
step() { echo "== $(date -u +%T) (+$(( $(date +%s) - START )) s) $*"; }
data=(--data-path .data/fashion-mnist)
{
    step "device"; nvidia-smi -L 2>/dev/null
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
    step "smoke: one tiny ADN run per study architecture on $DEVICE"
    smoke_ok=1
    for arch in mobilenet_v2_mini vit_mini resnet_mini; do
        timeout 60 python3 cli.py train --arch "$arch" --method adn --dataset fake --preset quick --train-subset 256 \
            --batch-size 32 --device "$DEVICE" --results-dir /tmp/smoke --no-progress > "/tmp/smoke-$arch.log" 2>&1 &
    done
    for job in $(jobs -p); do wait "$job" || smoke_ok=0; done
    for arch in mobilenet_v2_mini vit_mini resnet_mini; do echo "-- $arch"; tail -n 3 "/tmp/smoke-$arch.log"; done
    if [ "$smoke_ok" = 1 ]; then
        gpu_tests=(timeout 240 python3 -m pytest -q -x --tb=short -m gpu tests/test_gpu.py -p no:cacheprovider)
        if ls results/mini/measurements/{timing,latency,depth_width_latency}-cuda.json > /dev/null 2>&1; then
            step "every timing is cached: GPU tests beside the training (/tmp/gpu-tests.log)"
            "${gpu_tests[@]}" > /tmp/gpu-tests.log 2>&1 &
            tests_beside=$!
        else
            step "GPU tests on the quiet GPU"
            "${gpu_tests[@]}" 2>&1 | tail -n 40
            step "timings of table 2, figures 5 and 6 on $DEVICE (fig6a is latency --arch resnet50 --width)"
            timeout 300 python3 cli.py reproduce table2 fig5 fig6 --preset mini --seeds 3 --arch resnet_mini --no-train \
                --device "$DEVICE" "${data[@]}" --no-progress | grep -v "^  "
        fi
        IFS=';' read -ra stages <<< "$TRAIN_ARGS"
        for stage in "${stages[@]}"; do
            [ $(( $(date +%s) - START + 60 )) -lt "$BUDGET_S" ] || break
            IFS='&' read -ra pools <<< "$stage"
            groups=()
            for args in "${pools[@]}"; do
                [[ " $args " == *" --jobs "* ]] || args="$args --jobs $JOBS"
                step "training until +${BUDGET_S} s: reproduce $args"
                # its own process group, so that Ctrl-C reaches the pool and every worker
                # shellcheck disable=SC2086
                setsid python3 cli.py reproduce $args --device "$DEVICE" "${data[@]}" --no-progress \
                    >> /tmp/train.log 2>&1 &
                groups+=($!)
            done
            running() { for pool in "${groups[@]}"; do kill -0 "$pool" 2>/dev/null && return 0; done; return 1; }
            while running && [ $(( $(date +%s) - START )) -lt "$BUDGET_S" ]; do sleep 2; done
            if running; then
                step "Ctrl-C to the training pools"
                for pool in "${groups[@]}"; do kill -INT -- "-$pool" 2>/dev/null; done
                for _ in $(seq 60); do running || break; sleep 1; done
                running && { echo "pools still running after 60 s: killed"; for pool in "${groups[@]}"; do kill -KILL -- "-$pool" 2>/dev/null; done; }
            fi
            for pool in "${groups[@]}"; do wait "$pool"; step "pool $pool exit status $?"; done
        done
        grep -v "^  \(finished\|to train\|left out\|cached\)" /tmp/train.log | tail -n 60
        if [ -n "${tests_beside:-}" ]; then
            wait "$tests_beside"; step "GPU tests (beside the training) exit status $?"; tail -n 40 /tmp/gpu-tests.log
        fi
    else
        step "smoke failed: nothing else runs"; cat /tmp/smoke-*.log | tail -n 60
    fi
    step "packing"
    python3 scripts/device/pack.py .session-start "$OUT" --checkpoint-files 4
    ls -la "$OUT"
    step "done"
} 2>&1 | tee "$OUT/session.log"
