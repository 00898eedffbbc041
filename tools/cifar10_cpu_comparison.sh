#!/usr/bin/env bash
# SS-GAN against its GAN baseline on CIFAR-10 at a CPU budget (issue 7's reduced run).
# The reference recipes (configs/{gan,ssgan}_cifar10.yaml) with small nets and few steps; the
# two runs differ only in method.name. Usage: tools/cifar10_cpu_comparison.sh DATA_DIR [OUT_DIR]
# where DATA_DIR holds train.zip and test.zip (python3 ../shared/data/cifar10/unpack.py DATA_DIR).
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [OUT_DIR]}
out=${2:-runs/cifar10_cpu}
fd=${FD_EXTRACTOR:-../shared/fd/cifar10-fd-public.pt}
budget=(
  --set data.name=folder --set "data.path=$data/train.zip"
  --set method.generator.width=32 --set method.discriminator.width=32
  --set method.n_dis=2 --set method.ema_decay=0.999
  --set trainer.batch_size=32 --set trainer.steps=${STEPS:-3000} --set trainer.threads=1
  --set trainer.log_every=50 --set trainer.sample_every=500 --set trainer.checkpoint_every=500
  --set eval.fid.every=500 --set eval.fid.num_samples=2000 --set "eval.fid.extractor=$fd"
  --set eval.probe.every=500 --set eval.probe.train_size=5000 --set eval.probe.test_size=5000
  --set eval.probe.layers=[penultimate,block2]
)
for method in gan ssgan; do  # in parallel: one core each, same conditions for both
  ssgen train --config "configs/${method}_cifar10.yaml" "${budget[@]}" --set "run_dir=$out/$method" \
    --no-progress > "$out.$method.log" 2>&1 &
done
wait
ssgen report "$out/gan" "$out/ssgan" --out "$out/report"
