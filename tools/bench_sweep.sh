#!/usr/bin/env bash
# The GPU speed measurement of issues 5 and 16 in one call (for a GPU machine): the reference
# SS-GAN step (SNGAN ResNet, G 256 / D 128, n_dis 5) against the straightforward eager fp32 step,
# then each path (eager, per-module compile, the whole step compiled with CUDA graphs) in bf16 at
# batch 64 and 256, the goal being at most 18 ms per G step at batch 64; the GAN baseline; then
# FD and the probe. Every line is the tools' own output; quote them as printed.
#   tools/bench_sweep.sh [extra --set args for every run]
# On the lent GPU machine ../shared does not travel: copy ../shared/fd into .carry/fd (13 MB) and
# carry `.carry/fd`. Add --peer DIR (a kwotsin/mimicry checkout, carried too) to time Mimicry beside.
set -uo pipefail
bench() { echo "=== $*"; python tools/bench_train.py --rounds "${ROUNDS:-3}" --steps "${STEPS:-10}" --warmup "${WARMUP:-10}" "$@" "${extra[@]}"; }
extra=("$@")
bench --config configs/ssgan_cifar10.yaml --set trainer.precision=fp32 --paths eager,eager-plain  # vs the reference; the fused resampling alone
for batch in 64 256; do
  bench --config configs/ssgan_cifar10.yaml --set trainer.batch_size=$batch --set trainer.precision=bf16 \
    --no-reference --paths eager,modules,step,step-cl
done
bench --config configs/gan_cifar10.yaml --set trainer.precision=bf16 --no-reference --paths eager,step
python tools/bench_eval.py --extractor "${FD_EXTRACTOR:-.carry/fd/cifar10-fd-public.pt}" -n 10000 --g-width 256 --d-width 128
