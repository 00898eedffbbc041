"""The table of tools/finetune_runs.sh (and finetune_shapes.sh, which calls it): test top-1 after each
fine-tuning stage, from each source's pretrained network and from its random initialisation, one
Markdown row per source.

Usage: python tools/finetune_table.py OUT_DIR   (the folder tools/finetune_runs.sh wrote)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

COLUMNS = ("finetune/linear", "finetune/full", "finetune/linear_random_init", "finetune/full_random_init")


def latest_figures(metrics_file: Path) -> tuple[dict[str, float], dict]:
    """The last value of each fine-tuning metric in the file, and the protocol of stage 2 (pretrained)."""
    figures, protocol = {}, {}
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        for key, value in record["metrics"].items():
            if key in COLUMNS:
                figures[key] = value
                if key == "finetune/full":
                    protocol = record.get("protocol", {})
    return figures, protocol


def describe_source(pretrained: Path) -> str:
    config = yaml.safe_load((pretrained / "config.yaml").read_text())
    method = config["method"]
    net = method.get("encoder") or method.get("discriminator") or {}
    tasks = [t["name"] for t in method.get("tasks") or []]
    what = method["name"] + (f" ({', '.join(tasks)})" if tasks and method["name"] != "encoder" else
                             f": {', '.join(tasks)}" if tasks else "")
    return f"{what}; {net.get('name', '?')} width {net.get('width', '?')}, {config['trainer']['steps']} steps"


def table(out: Path) -> list[str]:
    rows = ["| source | network | stage 1 linear | stage 2 fine-tuned | random init: linear | random init: fine-tuned |",
            "|---|---|---|---|---|---|"]
    protocol = {}
    for metrics_file in sorted((out / "finetuned").glob("*/metrics.jsonl")):
        source = metrics_file.parent.name
        figures, source_protocol = latest_figures(metrics_file)
        protocol = source_protocol or protocol
        cells = [f"{100 * figures[k]:.1f}" if k in figures else "-" for k in COLUMNS]
        rows.append(f"| {source} | {describe_source(out / 'pretrained' / source)} | " + " | ".join(cells) + " |")
    if protocol:
        keep = ("dataset", "labels", "labelled_images", "test_size", "stage1", "stage2_steps", "batch_size",
                "optimizer", "lr_head", "lr_trunk", "schedule", "augment", "labelled_rows_sha256")
        rows += ["", "Protocol: " + ", ".join(f"{k}={protocol[k]}" for k in keep if k in protocol)]
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("\n".join(table(Path(sys.argv[1]))))
