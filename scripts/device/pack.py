"""There, at the end of a device session: packs what the session wrote under results/ into
tarballs that fit the device tool's return limits (at most 8 files of 16 MiB each, 64 MiB
together).

    python3 scripts/device/pack.py MARKER OUT [--checkpoint-files 5]

- ``OUT/records.tgz``: every file written after MARKER (run records, measurements, tables,
  figures), without checkpoints or models.
- ``OUT/checkpoints-N.tgz``: the checkpoints of unfinished runs that this session trained,
  the furthest trained first,
  each tarball under 15 MiB. A run whose checkpoint does not fit is left out whole, record
  too, so that no run comes back with epochs to resume but nothing to resume from.
"""
from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

LIMIT = 15 * 2 ** 20  # bytes per tarball (checkpoints barely compress)
MODELS = ("checkpoint.pt", "model.pt")


def progress(run: Path) -> int:
    """Epochs a run has finished (its metrics lines)."""
    metrics = run / "metrics.jsonl"
    return sum(1 for line in metrics.read_text().splitlines() if line.strip()) if metrics.is_file() else 0


def finished(run: Path) -> bool:
    env = run / "env.json"
    return env.is_file() and json.loads(env.read_text()).get("status") == "finished"


def pack(marker: Path, out: Path, checkpoint_files: int) -> dict:
    since = marker.stat().st_mtime
    checkpoints = sorted((c for c in Path("results").glob("*/runs/*/checkpoint.pt")
                          if c.stat().st_mtime >= since and not finished(c.parent)), key=lambda c: -progress(c.parent))
    bundles: list[list[Path]] = [[] for _ in range(checkpoint_files)]
    left_out = []
    for checkpoint in checkpoints:
        size = checkpoint.stat().st_size
        bundle = next((b for b in bundles if sum(c.stat().st_size for c in b) + size <= LIMIT), None)
        if bundle is None:
            left_out.append(checkpoint.parent)
        else:
            bundle.append(checkpoint)
    for i, bundle in enumerate((b for b in bundles if b), 1):
        with tarfile.open(out / f"checkpoints-{i}.tgz", "w:gz") as tar:
            for checkpoint in bundle:
                tar.add(checkpoint)
    records = [f for f in sorted(Path("results").rglob("*"))
               if f.is_file() and f.stat().st_mtime >= since and f.name not in MODELS
               and not any(run in f.parents for run in left_out)]
    with tarfile.open(out / "records.tgz", "w:gz") as tar:
        for f in records:
            tar.add(f)
    return {"records": len(records), "checkpoints": [[str(c.parent.name) for c in b] for b in bundles if b],
            "left_out": [run.name for run in left_out]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("marker", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--checkpoint-files", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(pack(args.marker, args.out, args.checkpoint_files), indent=1))


if __name__ == "__main__":
    main()
