#!/usr/bin/env bash
# The whole speed measurement of issue 5 in one call (for a GPU machine; ~5-8 minutes on an H100):
# SS-GAN and GAN at the reference sizes, each lever on and off, then step time against batch and
# resolution. Every line is tools/bench_train.py's own output; quote them as printed.
#   tools/bench_sweep.sh [extra --set args for every run]
# On the lent GPU machine ../shared does not travel: copy ../shared/fd into .carry/fd (13 MB) and
# carry `.carry/fd` (the CIFAR-10 npz, 20 MB, plus unpack.py also fit; unpack there, not here).
set -uo pipefail
bench() { echo "=== $*"; python tools/bench_train.py --steps "${STEPS:-30}" --warmup "${WARMUP:-10}" "$@" "${extra[@]}"; }
extra=("$@")
for config in configs/ssgan_cifar10.yaml configs/gan_cifar10.yaml; do
  bench --config "$config" --set trainer.precision=fp32                         # eager fp32 (vs the reference)
  bench --config "$config" --set trainer.precision=bf16 --no-reference           # + bf16 autocast
  bench --config "$config" --set trainer.precision=bf16 --set trainer.compile=true --no-reference  # + torch.compile
done
for batch in 128 256; do
  bench --config configs/ssgan_cifar10.yaml --set trainer.batch_size=$batch --set trainer.compile=true --no-reference
done
bench --config configs/ssgan_cifar10.yaml --set data.resolution=64 --set trainer.compile=true --no-reference
python tools/bench_eval.py --extractor "${FD_EXTRACTOR:-.carry/fd/cifar10-fd-public.pt}" -n 10000 --g-width 256 --d-width 128
