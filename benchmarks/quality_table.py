"""Quality per minute of training: a markdown table of finished runs' scores (docs/results.md).

    python benchmarks/quality_table.py RUN_DIR:MS_PER_STEP [RUN_DIR:MS_PER_STEP ...]

Each RUN_DIR was trained by train.py with --eval_every and --eval_samples=10000, then scored by
`python -m zoo.evaluate --workdir=RUN_DIR` (its eval.json). MS_PER_STEP is that configuration's
step time on a quiet machine (from the second and third epochs of a short run alone), so that a
run made while other runs shared the cores is placed at the minutes it would have taken alone:
minutes = step x MS_PER_STEP / 60000, evaluations and start-up not counted. One row per
evaluation during training (FID, KID), and one for eval.json (adds precision, recall, class
accuracy, the VAE's test negative ELBO).
"""
import json
import os
import sys


def _records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _cell(record, key, digits):
    return f"{record[key]:.{digits}f}" if key in record else "—"


def rows(run_dir, ms_per_step):
    """Markdown rows: (run, step, minutes alone, FID, KID, precision, recall, class accuracy, -ELBO)."""
    name = os.path.basename(os.path.normpath(run_dir))
    scored = [r for r in _records(run_dir) if "fid" in r and "elapsed_seconds" in r]
    with open(os.path.join(run_dir, "eval.json")) as f:
        final = {**json.load(f), "source": "eval.json"}
    out = []
    for record in [*scored, final]:
        minutes = record["step"] * ms_per_step / 60000
        class_accuracy = (f"{record['class_accuracy']:.3f} ({record['class_accuracy_real']:.3f})"
                          if "class_accuracy_real" in record else _cell(record, "class_accuracy", 3))
        out.append(f"| {name} | {record['step']} | {minutes:.1f} | {record['generated_images']} "
                   f"| {_cell(record, 'fid', 2)} | {_cell(record, 'kid', 4)} | {_cell(record, 'precision', 3)} "
                   f"| {_cell(record, 'recall', 3)} | {class_accuracy} | {_cell(record, 'test_negative_elbo_nats', 1)} "
                   f"| {record.get('source', 'during training')} |")
    return out


def parse(arg):
    """'RUN_DIR:MS_PER_STEP' -> (RUN_DIR, MS_PER_STEP), or a one-line exit naming what is wrong."""
    run_dir, _, ms = arg.rpartition(":")
    try:
        ms_per_step = float(ms)
    except ValueError:
        sys.exit(f"expected RUN_DIR:MS_PER_STEP, got {arg!r}")
    path = os.path.join(run_dir, "eval.json")
    if not os.path.isfile(path):
        sys.exit(f"expected RUN_DIR:MS_PER_STEP with RUN_DIR/eval.json, got {arg!r}")
    with open(path) as f:
        if "fid" not in json.load(f):
            sys.exit(f"{path} has no FID: score the run with `python -m zoo.evaluate --workdir={run_dir}`")
    return run_dir, ms_per_step


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    runs = [parse(arg) for arg in argv[1:]]
    print("| run | step | minutes alone | samples | FID | KID | precision | recall | class accuracy (real) "
          "| test -ELBO nats | scored |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run_dir, ms_per_step in runs:
        print("\n".join(rows(run_dir, ms_per_step)))


if __name__ == "__main__":
    main(sys.argv)
