"""Scores `mnist-client predict --format json` answers against a labels.csv
(file,label[,condition]) as the second renderer or the project's own sample
writer leave it: per condition, the share read right, the answers at or
above 0.99 that were wrong, and how photos with nothing to read (label
`none`) were answered.

Usage: python scripts/score_photos.py LABELS.csv ANSWERS.json [--markdown]
       [--require CONDITION=SHARE ...] [--require-no-digit SHARE]

Paths in ANSWERS are matched to LABELS' files by their path relative to
LABELS' folder. With --require, exits 1 when a condition reads below its
share (CI uses this); --require-no-digit applies to every nothing-to-read
condition together.
"""

import argparse
import csv
import json
import os
import sys
from collections import defaultdict

CONFIDENT = 0.99


def load(labels_path, answers_path):
    root = os.path.dirname(os.path.abspath(labels_path))
    with open(labels_path, newline="") as f:
        labels = {row["file"]: (row["label"], row.get("condition") or row["file"].split("/")[0]) for row in csv.DictReader(f)}
    with open(answers_path) as f:
        text = f.read().strip()
    answers = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    joined = []
    for answer in answers:
        rel = os.path.relpath(os.path.abspath(answer["path"]), root)
        if rel not in labels:
            continue
        label, condition = labels[rel]
        joined.append((condition, label, answer))
    missing = len(labels) - len(joined)
    if missing:
        raise SystemExit(f"{missing} labelled photos have no answer in {answers_path}")
    return joined


def score(joined):
    table = defaultdict(lambda: {"n": 0, "right": 0, "confident_wrong": 0, "no_digit": 0, "cut": 0, "errors": 0})
    for condition, label, answer in joined:
        row = table[condition]
        row["n"] += 1
        if "error" in answer:
            row["errors"] += 1
            continue
        no_digit = bool(answer.get("no_digit"))
        row["no_digit"] += no_digit
        row["cut"] += bool(answer.get("cut_by_frame"))
        if label == "none":
            row["right"] += no_digit
            row["confident_wrong"] += (not no_digit) and answer.get("confidence", 0) >= CONFIDENT
        else:
            right = (not no_digit) and str(answer.get("digit")) == label
            row["right"] += right
            row["confident_wrong"] += (not right) and (not no_digit) and answer.get("confidence", 0) >= CONFIDENT
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels")
    parser.add_argument("answers")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--require", action="append", default=[], metavar="CONDITION=SHARE")
    parser.add_argument("--require-no-digit", type=float)
    args = parser.parse_args()
    table = score(load(args.labels, args.answers))
    digits = {c: r for c, r in table.items() if not c.startswith(("blank", "black", "gradient", "empty", "paper-"))}
    nothing = {c: r for c, r in table.items() if c not in digits}
    if args.markdown:
        print("| condition | photos | read right | wrong at >= 0.99 | flagged cut by the frame | answered no digit |")
        print("|---|---:|---:|---:|---:|---:|")
    for name, rows in (("digits", digits), ("nothing to read", nothing)):
        for condition in sorted(rows):
            r = rows[condition]
            share = r["right"] / r["n"]
            if args.markdown:
                print(f"| {condition} | {r['n']} | {100 * share:.1f} % | {r['confident_wrong']} | {r['cut']} | {r['no_digit']} |")
            else:
                print(f"{condition:16} {r['n']:5} right {100 * share:5.1f} %  wrong@0.99 {r['confident_wrong']:3}  "
                      f"cut {r['cut']:3}  no_digit {r['no_digit']:3}  errors {r['errors']}")
    total = sum(r["n"] for r in digits.values())
    right = sum(r["right"] for r in digits.values())
    if total:
        print(f"{'digits, all':16} {total:5} right {100 * right / total:5.1f} %", file=sys.stderr)
    failed = []
    for requirement in args.require:
        condition, share = requirement.split("=")
        r = table.get(condition)
        if r is None or r["right"] / r["n"] < float(share):
            failed.append(f"{condition}: {r and r['right']}/{r and r['n']} < {share}")
    if args.require_no_digit is not None:
        for condition, r in nothing.items():
            if r["right"] / r["n"] < args.require_no_digit:
                failed.append(f"{condition}: {r['right']}/{r['n']} answered no digit < {args.require_no_digit}")
    if failed:
        print("below the required shares:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
