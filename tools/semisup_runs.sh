#!/usr/bin/env bash
# Every semi-supervised method at a CPU budget, one after another, seed SEED (default 0, also the
# labelled subset's data.seed), one thread, STEPS steps (default 500), batch 32 (labelled) + 32
# (unlabelled), encoder width WIDTH (default 16; distill's student half of it), test top-1 every
# EVAL_EVERY steps (default 100). ssgen report draws them all at the end.
#   shapes (default): configs/<method>_shapes.yaml with LABELS labels (default 0.1: 1,000 labelled,
#             9,000 unlabelled; LABELS=100 for 10 a class), 1,000 test images;
#   DATA=DIR: CIFAR-10 from DIR/train.zip and DIR/test.zip (python3 ../shared/data/cifar10/unpack.py DIR),
#             configs/<method>_cifar10.yaml with LABELS labels (default 4000), TEST_SIZE test images
#             (default 2000).
# distill's teacher is TEACHER (a classifier run; default OUT_DIR/supervised, so `supervised` goes
# first and distill last).
# Usage: [DATA=DIR] [STEPS=..] [WIDTH=..] [LABELS=..] [TEACHER=RUN] tools/semisup_runs.sh [OUT_DIR] [METHOD ...]
set -euo pipefail
data=${DATA:-}
dataset=shapes; [ -n "$data" ] && dataset=cifar10
out=${1:-runs/semisup_$dataset}
shift || true
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(supervised pseudo_label entmin noisy_student meta_pseudo_labels s4l enaet distill)
steps=${STEPS:-500}
width=${WIDTH:-16}
every=${EVAL_EVERY:-100}
if [ -n "$data" ]; then
  labels=${LABELS:-4000}
  data_args=(--set data.name=folder --set "data.path=$data/train.zip" --set "eval.accuracy.test_size=${TEST_SIZE:-2000}")
else
  labels=${LABELS:-0.1} data_args=()
fi
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
  ssgen train --config "configs/${method}_${dataset}.yaml" "${data_args[@]}" --no-progress --overwrite \
    --set "run_dir=$out/$method" --set "trainer.steps=$steps" --set trainer.threads=1 \
    --set "data.labels=$labels" --set "seed=$seed" --set "data.seed=$seed" \
    --set trainer.checkpoint_every=$steps --set "eval.accuracy.every=$every" --set eval.probe.every=0 \
    "${extra[@]}" > "$out/$method.log" 2>&1
  echo "$method: $(( $(date +%s) - start )) s; $(tail -n 2 "$out/$method.log" | head -n 1)"
done
ssgen report "$out" --out "$out/report" > /dev/null
