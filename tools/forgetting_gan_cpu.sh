#!/usr/bin/env bash
# Discriminator forgetting at a CPU budget: the plain GAN and SS-GAN on CIFAR-10, SEEDS seeds each,
# all runs side by side (one thread each), probes of D's frozen features every PROBE_EVERY steps on
# 5k/5k images (L-BFGS to convergence), every checkpoint kept for the past-fakes monitor.
#   DATA=.cache/cifar10 tools/forgetting_gan_cpu.sh runs/forget
# Settings (one regime, chosen before measuring; docs/results.md says why): G and D width 32, batch 64,
# n_dis 2, hinge, Adam betas (0, 0.9), D lr 4e-4 and G lr 2e-4 held constant (no decay, so a late fall
# is not the schedule's), bf16 autocast, no EMA.
set -euo pipefail
OUT=${1:?usage: DATA=DIR $0 OUT_DIR}
DATA=${DATA:?set DATA to a directory holding train.zip and test.zip}
STEPS=${STEPS:-4000}; PROBE_EVERY=${PROBE_EVERY:-500}; SEEDS=${SEEDS:-"0 1 2"}
METHODS=${METHODS:-"gan ssgan"}; PRECISION=${PRECISION:-bf16}  # PRECISION=fp32 METHODS=gan: the bf16 check
mkdir -p "$OUT"
for method in $METHODS; do
  for seed in $SEEDS; do
    ssgen train --config "configs/${method}_cifar10.yaml" --no-progress \
      --set seed="$seed" --set run_dir="$OUT/$method-s$seed" \
      --set data.name=folder --set data.path="$DATA/train.zip" \
      --set method.generator.width=32 --set method.discriminator.width=32 --set method.n_dis=2 \
      --set method.ema_decay=0 \
      --set method.d_optim.lr=4e-4 --set method.d_optim.schedule=constant \
      --set method.g_optim.lr=2e-4 --set method.g_optim.schedule=constant \
      --set trainer.steps="$STEPS" --set trainer.batch_size=64 --set trainer.precision="$PRECISION" \
      --set trainer.threads=1 --set trainer.device=cpu --set trainer.log_every=100 \
      --set trainer.sample_every=1000 --set trainer.checkpoint_every="$PROBE_EVERY" --set trainer.keep_checkpoints=1000 \
      --set eval.fid.every=0 \
      --set eval.probe.every="$PROBE_EVERY" --set eval.probe.train_size=5000 --set eval.probe.test_size=5000 \
      --set eval.probe.max_iter=1000 \
      > "$OUT/$method-s$seed.log" 2>&1 &
  done
done
wait
