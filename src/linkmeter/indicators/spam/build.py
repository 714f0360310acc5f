"""Builds the shipped spam model: ``python -m linkmeter.indicators.spam.build [--data FILE] [--out FILE]``.

Evaluates on the grouped, random and shift splits (training.evaluate_splits), fits the final model on every
row, and writes the artifact with its provenance and figures (default: the package's data/model.json).
Deterministic for a given data file and seed, apart from ``created`` and the CPU times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from linkmeter.indicators.spam import training
from linkmeter.indicators.spam.model import SHIPPED

DEFAULT_DATA = Path("../shared/data/labelled-urls/web-page-phishing-2021.csv.gz")
DEFAULT_OUT = Path(__file__).parent / "data" / SHIPPED
VERSION = "1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m linkmeter.indicators.spam.build", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the labelled CSV (url, status)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the artifact JSON")
    parser.add_argument("--version", default=VERSION)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        examples = training.load_labelled(args.data)
    except (OSError, training.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr)
    now = datetime.now(UTC)
    started = time.process_time()
    figures = training.evaluate_splits(examples, seed=args.seed, now=now, progress=say)
    provenance = {
        "data": args.data.name, "dataset": training.DATASET, "licence": training.LICENCE,
        "command": "python -m linkmeter.indicators.spam.build", "features": "URL only (the data set's pages are gone)",
    }
    artifact = training.train(examples, version=args.version, seed=args.seed, now=now, provenance=provenance,
                              figures=figures, progress=say)
    args.out.write_text(artifact.to_json(), encoding="utf-8")
    say(f"wrote {args.out} ({args.out.stat().st_size:,} bytes) in {time.process_time() - started:.1f} s CPU")
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
