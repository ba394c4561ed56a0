"""Summarise py-spy raw (collapsed) stacks: per thread, where the samples went.

    .venv/bin/python bench/profile_summary.py /tmp/tfspy/empty-8-0.txt [--top 25]

Each line of a raw file is ``frame;frame;...;leaf COUNT``; with ``--threads`` the first
frame names the thread. Prints, per thread, its share of all samples and the functions
with the most inclusive samples (a function counts once per stack it appears in).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

_LINE = re.compile(r"^(.*) (\d+)$")


def frame_name(frame: str) -> str:
    # py-spy frames look like "function (module/file.py:123)"; drop the line number.
    return re.sub(r":\d+\)$", ")", frame.strip())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    threads: dict = collections.defaultdict(lambda: [0, collections.Counter(),
                                                     collections.Counter()])
    total = 0
    for path in args.files:
        with open(path) as handle:
            for line in handle:
                match = _LINE.match(line.rstrip("\n"))
                if not match:
                    continue
                stack, count = match.group(1).split(";"), int(match.group(2))
                thread = stack[0] if stack and stack[0].startswith(("thread", "process")) else "?"
                frames = [frame_name(f) for f in stack[1:]] if thread != "?" else stack
                entry = threads[thread]
                entry[0] += count
                for name in set(frames):
                    entry[1][name] += count
                if frames:
                    entry[2][frames[-1]] += count
                total += count
    print(f"{total} samples in {len(args.files)} file(s)")
    for thread, (samples, inclusive, leaf) in sorted(threads.items(), key=lambda t: -t[1][0]):
        print(f"\n== {thread}: {samples} samples ({samples / total:.0%} of all)")
        print("  inclusive:")
        for name, count in inclusive.most_common(args.top):
            print(f"    {count / samples:6.1%}  {name}")
        print("  self (leaf):")
        for name, count in leaf.most_common(12):
            print(f"    {count / samples:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
