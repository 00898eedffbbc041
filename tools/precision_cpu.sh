#!/usr/bin/env bash
# fp32 against bf16 autocast on a CPU, trained, not only timed: the plain GAN, SS-GAN (the quick demo's
# settings), one encoder (RotNet) and one autoencoder (denoising), their shapes configs, each in both
# precisions at SEEDS seeds, STEPS steps, one thread a run, JOBS runs side by side (a run and its twin
# in the other precision are queued one after the other, so they run under about the same load).
#   tools/precision_cpu.sh runs/precision                                    # the embedded shapes data
#   DATA=.cache/cifar10 FD=../shared/fd/cifar10-fd-public.pt tools/precision_cpu.sh runs/precision_cifar10
#   python tools/runs_table.py runs/precision probe/penultimate --group     # mean ± std per arm
# DATA: a folder holding train.zip and test.zip, trained on with the same networks and settings; FD: its
# extractor. Evaluations at steps 0, STEPS/2 and STEPS: FD of 1,000 samples (GANs), the 2k/1k probe of
# the frozen features (D's or the encoder's), held-out task accuracy where a run has a task. Each
# evaluation runs in its run's precision (eval.*.precision: auto), as a user's would.
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR}
STEPS=${STEPS:-3000}; SEEDS=${SEEDS:-"0 1 2"}; JOBS=${JOBS:-2}
METHODS=${METHODS:-"gan:gan_shapes ssgan:quick rotnet:rotnet_shapes denoising:denoising_shapes"}
EVERY=$((STEPS / 2))
DATA_SET=""
if [ -n "${DATA:-}" ]; then
  DATA_SET="--set data.name=folder --set data.path=$DATA/train.zip --set eval.fid.extractor=${FD:?set FD to the extractor of DATA}"
fi
mkdir -p "$OUT"
for seed in $SEEDS; do
  for entry in $METHODS; do
    for precision in fp32 bf16; do
      echo "${entry%%:*} ${entry#*:} $precision $seed"
    done
  done
done | xargs -P "$JOBS" -L 1 bash -c '
  name=$0 config=$1 precision=$2 seed=$3 run="'"$OUT"'/$0-$2-s$3"
  [ -f "$run/metrics.jsonl" ] && grep -q "\"step\": '"$STEPS"'," "$run/metrics.jsonl" && exit 0  # done before; an unfinished one starts again
  ssgen train --config "configs/$config.yaml" --no-progress --overwrite \
    --set seed="$seed" --set run_dir="$run" '"$DATA_SET"' \
    --set trainer.steps='"$STEPS"' --set trainer.precision="$precision" \
    --set trainer.threads=1 --set trainer.device=cpu --set trainer.log_every=250 \
    --set trainer.sample_every='"$EVERY"' --set trainer.checkpoint_every='"$EVERY"' \
    --set eval.probe.every='"$EVERY"' --set eval.probe.train_size=2000 --set eval.probe.test_size=1000 \
    $(case $name in gan|ssgan) echo --set eval.fid.every='"$EVERY"' --set eval.fid.num_samples=1000;; esac) \
    $(case $name in ssgan|rotnet) echo --set eval.tasks.every='"$EVERY"' --set eval.tasks.test_size=1000;; esac) \
    > "$run.log" 2>&1
  echo "$(date -u +%H:%M:%S) done $run"
'
