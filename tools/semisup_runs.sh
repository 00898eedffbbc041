#!/usr/bin/env bash
# Every semi-supervised method on shapes with 10% of the labels (data.labels=0.1: 1,000 labelled,
# 9,000 unlabelled; LABELS=20 for 2 a class) at a CPU budget, seed SEED (default 0, also the labelled
# subset's data.seed): the shipped configs/<method>_shapes.yaml with
# STEPS steps (default 500), batch 32 (labelled) + 32 (unlabelled), encoder width WIDTH (default 16;
# distill's student half of it), one thread, test top-1 on 1,000 test images every 100 steps.
# distill's teacher is TEACHER (a classifier run; default OUT_DIR/supervised, so `supervised` goes
# first and distill last). ssgen report draws them all at the end.
# Usage: [STEPS=..] [WIDTH=..] [TEACHER=RUN] tools/semisup_shapes.sh [OUT_DIR] [METHOD ...]
set -euo pipefail
out=${1:-runs/semisup_shapes}
shift || true
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(supervised pseudo_label entmin noisy_student meta_pseudo_labels s4l enaet distill)
steps=${STEPS:-500}
width=${WIDTH:-16}
labels=${LABELS:-0.1}
seed=${SEED:-0}
teacher=${TEACHER:-$out/supervised}
mkdir -p "$out"
for method in "${methods[@]}"; do
  extra=(--set "method.encoder.width=$width")
  case $method in
    meta_pseudo_labels) extra+=(--set "method.teacher_encoder.width=$width") ;;
    distill) extra=(--set "method.encoder.width=$((width / 2))" --set "method.teacher=$teacher") ;;
  esac
  start=$(date +%s)
  ssgen train --config "configs/${method}_shapes.yaml" --no-progress --overwrite \
    --set "run_dir=$out/$method" --set "trainer.steps=$steps" --set trainer.threads=1 \
    --set "data.labels=$labels" --set "seed=$seed" --set "data.seed=$seed" \
    --set trainer.checkpoint_every=$steps --set eval.accuracy.every=100 --set eval.probe.every=0 \
    "${extra[@]}" > "$out/$method.log" 2>&1
  echo "$method: $(( $(date +%s) - start )) s; $(tail -n 2 "$out/$method.log" | head -n 1)"
done
ssgen report "$out" --out "$out/report" > /dev/null
