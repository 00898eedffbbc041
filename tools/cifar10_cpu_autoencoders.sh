#!/usr/bin/env bash
# The four pretext-task autoencoders on CIFAR-10 at the GANs' CPU budget (tools/cifar10_cpu_tasks.sh):
# encoder width 32 (the comparison's D), batch 32, 3000 steps, the same probe protocol.
#   tools/cifar10_cpu_autoencoders.sh DATA_DIR [OUT_DIR]      (DATA_DIR holds train.zip and test.zip)
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [OUT_DIR]}
out=${2:-runs/cifar10_cpu}
budget=(
  --set "data.path=$data/train.zip"
  --set method.encoder.width=32 --set method.decoder.width=32
  --set trainer.batch_size=32 --set trainer.steps=${STEPS:-3000} --set trainer.threads=1
  --set trainer.log_every=50 --set trainer.sample_every=1500 --set trainer.checkpoint_every=1500
  --set eval.probe.every=1500 --set eval.probe.train_size=5000 --set eval.probe.test_size=5000
)
run() { ssgen train --config "configs/$1_cifar10.yaml" "${budget[@]}" --set "run_dir=$out/$1" "${@:2}" --no-progress \
          > "$out.$1.log" 2>&1; }
(run denoising; run context --set method.discriminator.width=32) &  # the inpainting adversary at D's width too   # two at a time: one core each
(run split_brain; run colorization) &
wait
for method in denoising context split_brain colorization; do
  echo "== $method, random-init encoder of the same architecture:"
  ssgen probe "$out/$method" --random-init --train-size 5000 --test-size 5000 | tail -n 1
done
