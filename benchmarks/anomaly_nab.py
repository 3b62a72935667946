"""NAB scores and throughput of the streaming anomaly detectors.

Runs every detector in ``paca_otel.analysis.detectors.DETECTORS`` over the labelled NAB files
(one fresh detector per file, rows in order), scores them with our own implementation of NAB's
scoring (``paca_otel.analysis._nab``), and prints, per detector and cost profile, the
normalised score at the detector's default threshold (its ``is_anomaly`` flags, refractory
period included) and at the single best threshold over the corpus (NAB's own convention).

    python benchmarks/anomaly_nab.py [--data DIR] [--detector NAME ...] [--profiles]

``--data`` defaults to the shared ``nab-dev`` subset (19 files). Goal: >= 60 standard-profile
score at the default threshold on the full 58-file corpus; >= 100k points/s per detector.

Stability: the defaults were fixed on the dev files, so the script also prints the score of
each NAB category on its own, and the leave-one-category-out score (the best threshold chosen
on the other categories, applied to the held-out one) to show how much a tuned threshold would
overfit compared with the default.

Throughput is the update loop alone (CSV parsing excluded), in points per second of CPU time
(process time, so other processes on a busy machine do not count against it). The anchor,
measured in the same run, is a detector that returns a constant result: the cost of a Python
method call per point, the floor for any pure-Python online detector; the table shows how
many such calls one detector update costs (the "x anchor" column).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paca_otel.analysis._cli import read_series
from paca_otel.analysis._nab import (
    PROFILES,
    STANDARD,
    CostProfile,
    ScoredFile,
    best_threshold,
    normalised_score,
    score_detections,
    window_rows,
)
from paca_otel.analysis.detectors import DETECTORS, AnomalyDetector, AnomalyResult

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = (ROOT.parent / "shared/data/nab-dev", ROOT.parent.parent / "shared/data/nab-dev")


@dataclass
class Series:
    name: str
    category: str
    stamps: list[str]
    seconds: list[float]
    values: list[float]
    windows: list[tuple[int, int]]


@dataclass
class Run:
    series: Series
    results: list[AnomalyResult]


class _Constant:
    """The anchor: a 'detector' that does nothing (a method call and a return per point)."""

    name = "anchor"
    threshold = 0.5
    _result = AnomalyResult(0.0, False, 0.0)

    def update(self, timestamp: float, value: float) -> AnomalyResult:
        return self._result


def load(data: Path) -> list[Series]:
    windows = json.loads((data / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(windows):
        rows = read_series(data / "data" / name)
        stamps = [r[0] for r in rows]
        labelled = window_rows(stamps, [(start, end) for start, end in windows[name]])
        corpus.append(
            Series(
                name=name,
                category=name.split("/")[0],
                stamps=stamps,
                seconds=[r[2] for r in rows],
                values=[r[3] for r in rows],
                windows=labelled,
            )
        )
    return corpus


def run(
    corpus: Sequence[Series], factory: Callable[[], AnomalyDetector]
) -> tuple[list[Run], float]:
    runs, points, elapsed = [], 0, 0.0
    for series in corpus:
        update = factory().update
        started = time.process_time()
        results = [update(t, v) for t, v in zip(series.seconds, series.values, strict=True)]
        elapsed += time.process_time() - started
        points += len(results)
        runs.append(Run(series, results))
    return runs, points / elapsed


def scores(runs: Sequence[Run], profile: CostProfile) -> tuple[float, float, float]:
    """(score at the default threshold, best score, best threshold)."""
    files, raw_default, windows = [], 0.0, 0
    for r in runs:
        scored = ScoredFile.build(len(r.results), r.series.windows, profile)
        files.append((scored, [x.score for x in r.results]))
        raw_default += score_detections(scored, [x.is_anomaly for x in r.results], profile)
        windows += scored.windows
    best = best_threshold(files, profile)
    return normalised_score(raw_default, windows, profile), best.score, best.threshold


def held_out(runs: Sequence[Run], profile: CostProfile) -> dict[str, float]:
    """Per category: score with the best threshold of the *other* categories."""
    out = {}
    for category in sorted({r.series.category for r in runs}):
        train = [r for r in runs if r.series.category != category]
        test = [r for r in runs if r.series.category == category]
        _, _, threshold = scores(train, profile)
        raw, windows = 0.0, 0
        for r in test:
            scored = ScoredFile.build(len(r.results), r.series.windows, profile)
            raw += score_detections(scored, [x.score >= threshold for x in r.results], profile)
            windows += scored.windows
        out[category] = normalised_score(raw, windows, profile)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="directory with data/ and combined_windows.json")
    parser.add_argument("--detector", action="append", choices=list(DETECTORS))
    parser.add_argument("--profiles", action="store_true", help="also low-FP and low-FN profiles")
    args = parser.parse_args(argv)
    data = args.data or next((p for p in CANDIDATES if p.is_dir()), None)
    if data is None or not (data / "combined_windows.json").is_file():
        print(f"no NAB data at {data or CANDIDATES[0]} (use --data)", file=sys.stderr)
        return 2
    corpus = load(data)
    total = sum(len(s.values) for s in corpus)
    windows = sum(len(s.windows) for s in corpus)
    print(f"NAB data: {data} - {len(corpus)} files, {total} points, {windows} windows\n")
    _, anchor = run(corpus, _Constant)
    names = args.detector or list(DETECTORS)
    profiles = PROFILES if args.profiles else (STANDARD,)
    categories = sorted({s.category for s in corpus})
    header = (
        "| detector | profile | threshold | at default | best | at thr. | points/s | x anchor |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    details = []
    for name in names:
        runs, speed = run(corpus, DETECTORS[name])
        threshold = DETECTORS[name]().threshold
        for profile in profiles:
            default, best, at = scores(runs, profile)
            print(
                f"| {name} | {profile.name} | {threshold:.2f} | {default:.1f} | {best:.1f} | "
                f"{at:.3f} | {speed:,.0f} | {anchor / speed:.0f} |"
            )
        per_category = {
            c: scores([r for r in runs if r.series.category == c], STANDARD)[0] for c in categories
        }
        details.append((name, per_category, held_out(runs, STANDARD)))
    print(f"\nanchor (constant detector): {anchor:,.0f} points/s")
    print("\nstandard profile per category: score at the default threshold | with the best "
          "threshold of the other categories")  # fmt: skip
    print("| detector | " + " | ".join(categories) + " |")
    print("|---|" + "---|" * len(categories))
    for name, per_category, out in details:
        cells = " | ".join(f"{per_category[c]:.1f} / {out[c]:.1f}" for c in categories)
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
