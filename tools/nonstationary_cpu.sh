#!/usr/bin/env bash
# SS-GAN's non-stationary classifier (Chen et al. 2019, Figure 2) at a CPU budget: the plain arm
# (supervised) and the rotation arm (s4l: the rotation loss on every image in four rotations) on
# CIFAR-10, one class against the rest for K steps each, through the ten classes CYCLES times,
# SEEDS seeds each, all runs side by side (one thread each), then `ssgen report` over them.
#   DATA=.cache/cifar10 K=200 CYCLES=2 tools/nonstationary_cpu.sh runs/nonstationary
# Settings: the SNGAN D trunk at width 32, batch 64, Adam 1e-3 held constant (the configs'); the
# current task's balanced accuracy every K/5 steps on 2,000 test images; the 10-class probe at each
# task switch on 5k/5k. Every seed trains the same task order (method.label_schedule.seed 0), so the
# seeds of an arm average the same tasks and the two arms are compared task by task.
# Cost (one thread, a 2-core machine already running 6 other trainings): plain 0.056 s/step, rotation
# 0.40 s/step (it encodes 5x the images: the labelled batch and a second one in four rotations);
# each evaluation of both kinds about 7 s. K=200, 2 cycles: 4,000 steps, roughly 8 and 32 minutes a run.
set -euo pipefail
OUT=${1:-runs/nonstationary}
DATA=${DATA:-.cache/cifar10}
K=${K:-200}; CYCLES=${CYCLES:-2}; SEEDS=${SEEDS:-"0 1 2"}
[ -f "$DATA/train.zip" ] && [ -f "$DATA/test.zip" ] || { echo "set DATA to a directory holding train.zip and test.zip" >&2; exit 2; }
mkdir -p "$OUT"
for arm in plain rotation; do
  for seed in $SEEDS; do
    ssgen train --config "configs/nonstationary_${arm}_cifar10.yaml" --no-progress \
      --set seed="$seed" --set run_dir="$OUT/$arm-s$seed" \
      --set data.name=folder --set data.path="$DATA/train.zip" \
      --set method.encoder.width=32 --set method.label_schedule.every="$K" \
      --set trainer.steps=$((K * 10 * CYCLES)) --set trainer.batch_size=64 \
      --set trainer.threads=1 --set trainer.device=cpu --set trainer.log_every=$((K / 5)) \
      --set trainer.checkpoint_every="$K" \
      --set eval.accuracy.every=$((K / 5)) --set eval.accuracy.test_size=2000 \
      --set eval.probe.every="$K" --set eval.probe.train_size=5000 --set eval.probe.test_size=5000 \
      > "$OUT/$arm-s$seed.log" 2>&1 &
  done
done
wait
ssgen report "$OUT" --out "$OUT/report"
