"""The table of tools/finetune_runs.sh (and finetune_shapes.sh, which calls it): test top-1 after each
fine-tuning stage, from each source's pretrained network and from its random initialisation, one
Markdown row per source.

Usage: python tools/finetune_table.py OUT_DIR [--plot FILE.png]   (OUT_DIR: what tools/finetune_runs.sh wrote)
  --plot  also a bar chart: each source's two stages, its random-init floor's two stages as ticks
"""

from __future__ import annotations

import argparse
import json
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


FLOORS = ("finetune/linear_random_init", "finetune/full_random_init")


def shared_floors(out: Path) -> dict[str, str]:
    """{source: the source whose floor it shares} (tools/finetune_runs.sh: the same network)."""
    path = out / "shared_floors.txt"
    return dict(line.split() for line in path.read_text().splitlines() if line.strip()) if path.exists() else {}


def sources(out: Path) -> list[tuple[str, dict[str, float]]]:
    """(source, its figures), a shared floor's figures filled in from the source that measured it."""
    figures = {f.parent.name: latest_figures(f)[0] for f in sorted((out / "finetuned").glob("*/metrics.jsonl"))}
    for name, other in shared_floors(out).items():
        if name in figures and other in figures:
            figures[name].update({k: figures[other][k] for k in FLOORS if k in figures[other]})
    return list(figures.items())


def table(out: Path) -> list[str]:
    rows = ["| source | network | stage 1 linear | stage 2 fine-tuned | random init: linear "
            "| random init: fine-tuned |",
            "|---|---|---|---|---|---|"]
    protocol, shared = {}, shared_floors(out)
    for metrics_file in sorted((out / "finetuned").glob("*/metrics.jsonl")):
        protocol = latest_figures(metrics_file)[1] or protocol
    for source, figures in sources(out):
        cells = [f"{100 * figures[k]:.1f}" + (f" (= {shared[source]})" if k in FLOORS and source in shared else "")
                 if k in figures else "-" for k in COLUMNS]
        rows.append(f"| {source} | {describe_source(out / 'pretrained' / source)} | " + " | ".join(cells) + " |")
    if protocol:
        keep = ("dataset", "labels", "labelled_images", "test_size", "stage1", "stage2_steps", "batch_size",
                "optimizer", "lr_head", "lr_trunk", "schedule", "augment", "labelled_rows_sha256")
        rows += ["", "Protocol: " + ", ".join(f"{k}={protocol[k]}" for k in keep if k in protocol)]
    return rows


def plot(out: Path, path: Path) -> None:
    """Grouped bars (stage 1, stage 2) per source; the floor's two stages as black ticks on them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sources(out)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rows)), 4.0))
    stages = (("finetune/linear", "finetune/linear_random_init", "stage 1: linear"),
              ("finetune/full", "finetune/full_random_init", "stage 2: fine-tuned"))
    for offset, (stage, floor, label) in enumerate(stages):
        xs = [i + (offset - 0.5) * 0.38 for i in range(len(rows))]
        ax.bar(xs, [100 * f.get(stage, 0.0) for _, f in rows], width=0.36, label=label, color=f"C{offset}")
        ax.scatter(xs, [100 * f[floor] if floor in f else float("nan") for _, f in rows], marker="_", s=200,
                   color="black", zorder=3, label="random init, same stage" if offset else None)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=45, ha="right")
    ax.set_ylabel("test top-1 (%)")
    top = max([100 * v for _, f in rows for v in f.values()] or [100.0])
    ax.set_ylim(0, min(100, 10 * (int(top * 1.15) // 10 + 1)))  # room for the legend, the bars' differences visible
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    print("\n".join(table(args.out)))
    if args.plot:
        plot(args.out, args.plot)
        print(f"plot: {args.plot}")
