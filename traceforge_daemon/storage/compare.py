"""Comparing two runs step by step: which steps correspond, and what changed.

Steps are paired in three passes, each over the steps still unpaired:

1. replay: when one run replays a step of the other, the replayed step and the
   replay's root are paired, and so are their subtrees by position (below);
2. tree position: a step's key is its parent's key plus its name and occurrence among
   same-named siblings (``research/web_search#2``), as Jaeger lines up traces;
3. name: what is left pairs by name in start order, so a step that moved in the
   tree still meets its counterpart.

Whatever stays unpaired exists on one side only. Deltas are B minus A; a delta is
None when either side has no value (a running step's latency, an unpriced cost).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Iterable, Optional

from .runs_query import run_detail

STEP_FIELDS = (
    "step_id", "parent_step_id", "step_name", "model", "status", "depth", "offset_ms",
    "latency_ms", "tokens_input", "tokens_output", "cost_usd", "error_type",
)
DELTA_FIELDS = ("latency_ms", "tokens_input", "tokens_output", "total_tokens", "cost_usd")
RUN_DELTA_FIELDS = (
    "duration_ms", "step_count", "error_count", "tokens_input", "tokens_output",
    "total_tokens", "cost_usd", "unpriced_steps",
)


class UnknownRun(LookupError):
    def __init__(self, which: str, run_id: str) -> None:
        super().__init__(f"no run with id '{run_id}' (parameter '{which}')")
        self.which, self.run_id = which, run_id

    def __reduce__(self):  # raised in a reader process, re-raised in the daemon
        return (UnknownRun, (self.which, self.run_id))


def compare_runs(conn: sqlite3.Connection, run_id_a: str, run_id_b: str) -> dict:
    a = run_detail(conn, run_id_a)
    if a is None:
        raise UnknownRun("run_id_a", run_id_a)
    b = run_detail(conn, run_id_b)
    if b is None:
        raise UnknownRun("run_id_b", run_id_b)
    pairs = align(a, b)
    rows = in_tree_order([_row(step_a, step_b, how) for step_a, step_b, how in pairs])
    run_a, run_b = a["run"], b["run"]
    return {
        "run_a": run_a,
        "run_b": run_b,
        "steps": rows,
        "only_in_a": [row["a"]["step_id"] for row in rows if row["b"] is None],
        "only_in_b": [row["b"]["step_id"] for row in rows if row["a"] is None],
        "matched": sum(1 for row in rows if row["a"] and row["b"]),
        "totals": {
            "a": {field: run_a.get(field) for field in RUN_DELTA_FIELDS},
            "b": {field: run_b.get(field) for field in RUN_DELTA_FIELDS},
            "delta": {field: _delta(run_a.get(field), run_b.get(field))
                      for field in RUN_DELTA_FIELDS},
        },
    }


def align(a: dict, b: dict) -> list[tuple[Optional[dict], Optional[dict], Optional[str]]]:
    """Pair the steps of two run details; unpaired steps come with None opposite."""
    by_id_a = {step["step_id"]: step for step in a["steps"]}
    by_id_b = {step["step_id"]: step for step in b["steps"]}
    paired: dict[str, tuple[str, str]] = {}  # A step id -> (B step id, how)
    paired_b: set[str] = set()

    def pair(keys_a: dict[str, str], keys_b: dict[str, str], how: str) -> None:
        for key, step_a in keys_a.items():
            step_b = keys_b.get(key)
            if step_b is not None and step_a not in paired and step_b not in paired_b:
                paired[step_a] = (step_b, how)
                paired_b.add(step_b)

    anchor = _replay_anchor(a, b)
    if anchor is not None:
        root_a, root_b = anchor
        pair(tree_keys(by_id_a, [root_a]), tree_keys(by_id_b, [root_b]), "replay")
    pair(tree_keys(by_id_a, a["roots"]), tree_keys(by_id_b, b["roots"]), "tree")
    left_b = defaultdict(list)
    for step in b["steps"]:
        if step["step_id"] not in paired_b:
            left_b[step["step_name"]].append(step["step_id"])
    for name in left_b:
        left_b[name].reverse()  # pop() from the end takes the earliest
    for step in a["steps"]:
        candidates = left_b.get(step["step_name"])
        if step["step_id"] not in paired and candidates:
            step_b = candidates.pop()
            paired[step["step_id"]] = (step_b, "name")
            paired_b.add(step_b)
    result = []
    for step in a["steps"]:
        match = paired.get(step["step_id"])
        if match is None:
            result.append((step, None, None))
        else:
            result.append((step, by_id_b[match[0]], match[1]))
    result.extend((None, step, None) for step in b["steps"] if step["step_id"] not in paired_b)
    return result


def in_tree_order(rows: list[dict]) -> list[dict]:
    """The rows as one merged tree, depth first: each row sits under the row of its parent
    (A's parent where it has an A side, else B's); siblings follow A's start order, and a
    step only in B comes right after the sibling that precedes it in B."""
    row_of = {}
    for row in rows:
        for side in ("a", "b"):
            if row[side] is not None:
                row_of[(side, row[side]["step_id"])] = row
    children: dict = defaultdict(list)
    for row in rows:
        side = "a" if row["a"] is not None else "b"
        parent = row_of.get((side, row[side]["parent_step_id"]))
        children[None if parent is None else id(parent)].append(row)
    ordered = []
    stack = list(reversed(_sibling_order(children[None])))
    while stack:
        row = stack.pop()
        ordered.append(row)
        stack.extend(reversed(_sibling_order(children.get(id(row), []))))
    return ordered


def _sibling_order(siblings: list[dict]) -> list[dict]:
    keys = {}
    anchor = float("-inf")  # A's offset of the last sibling, in B's order, that has an A side
    for row in sorted((r for r in siblings if r["b"] is not None),
                      key=lambda r: r["b"]["offset_ms"]):
        if row["a"] is not None:
            anchor = row["a"]["offset_ms"]
        else:
            keys[id(row)] = (anchor, 1, row["b"]["offset_ms"])
    return sorted(siblings, key=lambda r: keys.get(id(r)) or (r["a"]["offset_ms"], 0, 0.0))


def _replay_anchor(a: dict, b: dict) -> Optional[tuple[str, str]]:
    """(A step, B root) when B replays a step of A, or the mirror image."""
    for source, replay, flip in ((a, b, False), (b, a, True)):
        run = replay["run"]
        if run.get("replay_of_run_id") != source["run"]["run_id"]:
            continue
        source_ids = {step["step_id"]: step for step in source["steps"]}
        original = source_ids.get(run.get("replay_of_step_id"))
        if original is None:
            continue
        replay_ids = {step["step_id"]: step for step in replay["steps"]}
        for root in replay["roots"]:
            if replay_ids[root]["step_name"] == original["step_name"]:
                return (root, original["step_id"]) if flip else (original["step_id"], root)
    return None


def tree_keys(by_id: dict[str, dict], roots: Iterable[str]) -> dict[str, str]:
    """key -> step id, where a key is the path of name#occurrence from the roots."""
    keys: dict[str, str] = {}
    stack = [("", list(roots))]
    while stack:
        prefix, siblings = stack.pop()
        seen: dict[str, int] = defaultdict(int)
        for step_id in siblings:
            step = by_id[step_id]
            name = step["step_name"]
            key = f"{prefix}/{name}#{seen[name]}"
            seen[name] += 1
            keys[key] = step_id
            if step["children"]:
                stack.append((key, step["children"]))
    return keys


def _row(a: Optional[dict], b: Optional[dict], how: Optional[str]) -> dict:
    return {
        "step_name": (a or b)["step_name"],
        "match": how,
        "a": _pick(a),
        "b": _pick(b),
        "delta": None if a is None or b is None else {
            "latency_ms": _delta(a["latency_ms"], b["latency_ms"]),
            "tokens_input": b["tokens_input"] - a["tokens_input"],
            "tokens_output": b["tokens_output"] - a["tokens_output"],
            "total_tokens": (b["tokens_input"] + b["tokens_output"])
            - (a["tokens_input"] + a["tokens_output"]),
            "cost_usd": _delta(a["cost_usd"], b["cost_usd"]),
        },
    }


def _pick(step: Optional[dict]) -> Optional[dict]:
    return None if step is None else {field: step.get(field) for field in STEP_FIELDS}


def _delta(a, b):
    if a is None or b is None:
        return None
    difference = b - a
    return round(difference, 10) if isinstance(difference, float) else difference
