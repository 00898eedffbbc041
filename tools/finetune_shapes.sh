#!/usr/bin/env bash
# `ssgen finetune` from every kind of pretrained network on shapes with 10% of the labels (issue 15):
# the SS-GAN and GAN discriminators, each autoencoder's encoder, each pretext encoder; and from the
# random initialisation of the same network (the floor), with the same protocol.
#   pretraining: the shipped configs/<name>.yaml at their own budget (560-600 steps), one thread;
#   finetune:    --labels LABELS (default 0.1: 1,000 labelled images, the same seeded subset for every
#                source), stage 1 the linear probe, stage 2 STAGE2_STEPS (default 500) at batch 64,
#                head lr 1e-3, pretrained part x0.1, weak augmentation; test top-1 on the 2,000 test images.
# Finished pieces are skipped, so a cut run continues where it stopped.
# The fine-tuning is tools/finetune_runs.sh's; tools/finetune_table.py OUT_DIR prints the table.
# Usage: tools/finetune_shapes.sh [OUT_DIR] [SOURCE ...]   (SOURCE: a config name, e.g. quick rotnet_shapes)
set -euo pipefail
out=${1:-runs/finetune_shapes}
shift || true
sources=("$@")
[ ${#sources[@]} -gt 0 ] || sources=(quick gan_shapes denoising_shapes context_shapes split_brain_shapes
  colorization_shapes rotnet_shapes jigsaw_shapes exemplar_shapes simclr_shapes moco_shapes byol_shapes
  dino_shapes ibot_shapes)
labels=${LABELS:-0.1}
stage2=${STAGE2_STEPS:-500}
mkdir -p "$out"

for source in "${sources[@]}"; do
  run=$out/pretrained/$source
  steps=$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['trainer']['steps'])" "configs/$source.yaml")
  if [ ! -f "$run/checkpoints/step-$(printf %08d "$steps").pt" ]; then
    start=$(date +%s)
    if [ -d "$run" ]; then resume=(--resume "$run"); else resume=(--config "configs/$source.yaml" --set "run_dir=$run"); fi
    ssgen train "${resume[@]}" --no-progress --set trainer.threads=1 >> "$out/$source.train.log" 2>&1 \
      || { echo "$source: pretraining failed, see $out/$source.train.log"; continue; }
    echo "$source: pretrained $steps steps in $(( $(date +%s) - start )) s"
  fi
done
LABELS=$labels STAGE2_STEPS=$stage2 tools/finetune_runs.sh "$out" $(for source in "${sources[@]}"; do
  echo "$source=$out/pretrained/$source"; done)
