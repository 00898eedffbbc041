#!/usr/bin/env bash
# `ssgen finetune` from the last checkpoint of each given run, and from the random initialisation of
# the same network (the floor), with one protocol (issue 15):
#   --labels LABELS (default 0.1; 4000 on CIFAR-10), the same seeded subset for every source; stage 1 the
#   linear probe, stage 2 STAGE2_STEPS (default 500) at batch 64, head lr 1e-3, pretrained part x0.1, weak
#   augmentation, one thread; test top-1 on the run's whole test split.
# Each SOURCE is NAME=RUN_DIR; the results go to OUT_DIR/finetuned/NAME, and OUT_DIR/pretrained/NAME
# names the run (a link), which tools/finetune_table.py OUT_DIR reads to print the table.
# One floor serves sources of the same network: where an earlier source has the same method, network
# config, seed and data (the encoder method's trunk is built before its tasks' heads, from the seed),
# its floor is not measured again but named in OUT_DIR/shared_floors.txt, which the table reads.
# Finished pieces are skipped, so a cut run continues where it stopped.
# Usage: [LABELS=..] [STAGE2_STEPS=..] tools/finetune_runs.sh OUT_DIR NAME=RUN_DIR ...
set -euo pipefail
out=${1:?usage: $0 OUT_DIR NAME=RUN_DIR ...}
shift
labels=${LABELS:-0.1}
stage2=${STAGE2_STEPS:-500}
mkdir -p "$out/pretrained" "$out/finetuned"

for source in "$@"; do
  name=${source%%=*} run=${source#*=}
  [ "$name" != "$source" ] || { echo "source $source: expected NAME=RUN_DIR" >&2; exit 2; }
  checkpoint=$(ls "$run"/checkpoints/step-*.pt 2>/dev/null | sort | tail -n 1)
  [ -n "$checkpoint" ] || { echo "$name: no checkpoint in $run/checkpoints; skipped"; continue; }
  link=$out/pretrained/$name
  [ "$(realpath "$link" 2>/dev/null)" = "$(realpath "$run")" ] || ln -sfn "$(realpath "$run")" "$link"
  dir=$out/finetuned/$name
  key=$(python3 -c "import json, sys, yaml; c = yaml.safe_load(open(sys.argv[1])); m = c['method']
print(json.dumps([m['name'], m.get('encoder'), m.get('discriminator'), c['seed'], c['data']], sort_keys=True))" "$run/config.yaml")
  same=$(grep -F -x -B1 -- "$key" "$out/floor_keys.txt" 2>/dev/null | head -n 1 || true)
  for init in pretrained random; do
    if [ $init = random ] && [ -n "$same" ] && [ "$same" != "$name" ]; then
      grep -q "^$name " "$out/shared_floors.txt" 2>/dev/null || echo "$name $same" >> "$out/shared_floors.txt"
      echo "$name (random): the floor of $same (the same network)"; continue
    fi
    metric=finetune/full; flag=()
    [ $init = random ] && { metric=finetune/full_random_init; flag=(--random-init); }
    grep -q "\"$metric\"" "$dir/metrics.jsonl" 2>/dev/null && continue  # measured already
    start=$(date +%s)
    ssgen finetune "$checkpoint" "${flag[@]}" --labels "$labels" --steps "$stage2" --threads 1 --out "$dir" \
      >> "$out/$name.finetune.log" 2>&1 || { echo "$name ($init): finetune failed, see $out/$name.finetune.log"; continue; }
    echo "$name ($init): $(grep -h '^stage' "$out/$name.finetune.log" | tail -n 2 | tr '\n' ' ') [$(( $(date +%s) - start )) s]"
  done
  [ -n "$same" ] || printf '%s\n%s\n' "$name" "$key" >> "$out/floor_keys.txt"
done
python3 tools/finetune_table.py "$out"
