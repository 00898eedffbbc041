#!/usr/bin/env bash
# Every self-supervised task at a CPU budget on CIFAR-10 (issues 13, 14 and 15), three groups:
#   gans:     the task on a GAN's discriminator (the forgetting figure: probe of D vs step, FD beside),
#             the GAN and SS-GAN recipes with small nets (width 32, n_dis 2, batch 32, GAN_STEPS G steps,
#             default 500), one seed; FD and probe at step 0 (the random-init floor), halfway and at the end;
#   encoders: the task alone on one encoder (ResNet-18 at width 16, batch 32, ENCODER_STEPS steps, default
#             300; iBOT: a small ViT), probe and kNN at step 0 (the random-init floor), halfway and at the end;
#   autoencoders: the pretext autoencoders (denoising, context encoder (its adversary too), split-brain,
#             colorization), encoder and decoder at width AE_WIDTH (default 16), batch 32, ENCODER_STEPS steps,
#             probe at step 0 (the floor), halfway and at the end: the sources that tools/finetune_runs.sh
#             fine-tunes beside the encoders and discriminators (AE_WIDTH=32 ENCODER_STEPS=3000: the
#             budget of the GAN comparison's D in docs/results.md).
# Usage: tools/cifar10_cpu_tasks.sh DATA_DIR [OUT_DIR] [gans|encoders|autoencoders|all]
# DATA_DIR holds train.zip and test.zip (python3 ../shared/data/cifar10/unpack.py DATA_DIR).
# Runs go two at a time (JOBS=N: N), one thread each; ssgen report draws each group at the end.
set -euo pipefail
gan_steps=${GAN_STEPS:-500}
encoder_steps=${ENCODER_STEPS:-300}
ae_width=${AE_WIDTH:-16}
data=${1:?usage: $0 DATA_DIR [OUT_DIR] [gans|encoders|autoencoders|all]}
out=${2:-runs/cifar10_cpu}
group=${3:-all}
case $group in gans|encoders|autoencoders|all) ;; *) echo "group $group: expected gans, encoders, autoencoders or all" >&2; exit 2 ;; esac
fd=${FD_EXTRACTOR:-../shared/fd/cifar10-fd-public.pt}

gan_budget=(
  --set data.name=folder --set "data.path=$data/train.zip"
  --set method.generator.width=32 --set method.discriminator.width=32
  --set method.n_dis=2 --set method.ema_decay=0.999
  --set trainer.batch_size=32 --set trainer.steps=$gan_steps --set trainer.threads=1
  --set trainer.log_every=50 --set trainer.sample_every=$((gan_steps / 2)) --set trainer.checkpoint_every=$((gan_steps / 2))
  --set eval.fid.every=$((gan_steps / 2)) --set eval.fid.num_samples=2000 --set "eval.fid.extractor=$fd"
  --set eval.probe.every=$((gan_steps / 2)) --set eval.probe.train_size=5000 --set eval.probe.test_size=5000
  --set eval.probe.layers=[penultimate,block2]
)
# name | config | the task list on D (empty: the config's own)
gans=(
  "gan|gan_cifar10|"
  "ssgan|ssgan_cifar10|"
  "jigsaw|gan_cifar10|[{name: jigsaw, permutations: 100, hidden: 256}]"
  "exemplar|gan_cifar10|[{name: exemplar, classes: 1000, hidden: 256}]"
  "simclr|gan_cifar10|[{name: simclr, hidden: 256, dim: 128}]"
  "moco|gan_cifar10|[{name: moco, hidden: 256, dim: 128, queue: 4096}]"
  "byol|gan_cifar10|[{name: byol, hidden: 256, dim: 128, predictor_hidden: 256}]"
  "dino|gan_cifar10|[{name: dino, prototypes: 1024, hidden: 256, bottleneck: 128}]"
)

enc_budget=(
  --set data.name=folder --set "data.path=$data/train.zip"
  --set method.encoder.width=16 --set trainer.batch_size=32 --set trainer.steps=$encoder_steps
  --set trainer.threads=1 --set trainer.log_every=50 --set trainer.checkpoint_every=$((encoder_steps / 2))
  --set method.optim.warmup_steps=$((encoder_steps / 10))
  --set eval.probe.every=$((encoder_steps / 2)) --set eval.probe.train_size=2000 --set eval.probe.test_size=2000
  --set eval.knn.every=$((encoder_steps / 2)) --set eval.knn.train_size=2000 --set eval.knn.test_size=2000
)
vit=(--set method.encoder.name=vit --set method.encoder.width=128 --set method.encoder.depth=6
     --set method.encoder.heads=4 --set method.optim.name=adamw --set method.optim.lr=5e-4
     --set method.optim.weight_decay=0.04 --set "method.optim.betas=[0.9, 0.999]")
# name | config | tasks | extra
encoders=(
  "rotnet|rotnet_cifar10||"
  "jigsaw|jigsaw_cifar10|[{name: jigsaw, permutations: 100, hidden: 512}]|"
  "exemplar|exemplar_cifar10|[{name: exemplar, classes: 4000, hidden: 512}]|"
  "simclr|rotnet_cifar10|[{name: simclr, hidden: 512, dim: 128}]|"
  "moco|rotnet_cifar10|[{name: moco, hidden: 512, dim: 128, queue: 4096}]|"
  "byol|rotnet_cifar10|[{name: byol, hidden: 512, dim: 128, predictor_hidden: 512}]|"
  "dino|rotnet_cifar10|[{name: dino, prototypes: 1024, hidden: 512, bottleneck: 128}]|"
  "ibot|rotnet_cifar10|[{name: ibot, prototypes: 1024, hidden: 512, bottleneck: 128}]|vit"
)

ae_budget=(
  --set data.name=folder --set "data.path=$data/train.zip"
  --set method.encoder.width=$ae_width --set method.decoder.width=$ae_width --set trainer.batch_size=32
  --set trainer.steps=$encoder_steps --set trainer.threads=1 --set trainer.log_every=50
  --set trainer.sample_every=$((encoder_steps / 2)) --set trainer.checkpoint_every=$((encoder_steps / 2))
  --set eval.probe.every=$((encoder_steps / 2)) --set eval.probe.train_size=5000 --set eval.probe.test_size=5000
)
autoencoders=(
  "denoising|denoising_cifar10||"
  "context|context_cifar10||context"
  "split_brain|split_brain_cifar10||"
  "colorization|colorization_cifar10||"
)

run() {  # name config tasks budget-array-name extra outdir
  local name=$1 config=$2 tasks=$3 budget=$4 extra=$5 dir=$6
  local -n budget_ref=$budget
  local args=(--config "configs/$config.yaml" --set "run_dir=$dir/$name" --no-progress "${budget_ref[@]}")
  [ -n "$tasks" ] && args+=(--set "method.tasks=$tasks")
  # After the budget, which sets the ResNet's width: a later --set wins (until 2026-12-05 the
  # budget came last and the ViT ran at width 16, not 128).
  [ "$extra" = vit ] && args+=("${vit[@]}")
  [ "$extra" = context ] && args+=(--set "method.discriminator.width=$ae_width")  # its adversary, at the same width
  ssgen train "${args[@]}" > "$dir/$name.log" 2>&1 || echo "$name failed: see $dir/$name.log"
}

pairwise() {  # run the jobs JOBS at a time (default 2: one a core)
  local running=0 slots=${JOBS:-2}
  for job in "$@"; do
    eval "$job" &
    running=$((running + 1))
    if [ $running -eq "$slots" ]; then wait -n; running=$((running - 1)); fi
  done
  wait
}

run_group() {  # group entries-array-name budget-array-name steps: the group's unfinished runs, then its report
  local group_name=$1 steps=$4 jobs=() entry name config tasks extra
  local -n entries=$2
  mkdir -p "$out/$group_name"
  for entry in "${entries[@]}"; do
    IFS='|' read -r name config tasks extra <<< "$entry"
    [ -f "$out/$group_name/$name/checkpoints/step-$(printf %08d "$steps").pt" ] && continue  # done already
    jobs+=("run '$name' '$config' '$tasks' $3 '$extra' '$out/$group_name'")
  done
  pairwise "${jobs[@]}"
  ssgen report "$out/$group_name" --out "$out/$group_name-report"
}

for each in gans encoders autoencoders; do
  [ "$group" = "$each" ] || [ "$group" = all ] || continue
  case $each in
    gans) run_group gans gans gan_budget "$gan_steps" ;;
    encoders) run_group encoders encoders enc_budget "$encoder_steps" ;;
    autoencoders) run_group autoencoders autoencoders ae_budget "$encoder_steps" ;;
  esac
done
