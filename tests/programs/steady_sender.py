"""Trace STEPS steps at a steady pace, writing delivery stats to STATS_FILE as it goes.

Usage: python steady_sender.py INDEX STEPS STATS_FILE
Prints the final stats as JSON once everything is delivered (flush waits up to 120 s).
"""

import json
import os
import sys
import time

import traceforge_client as tf


def write_stats(path: str) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(tf.stats(), handle)
    os.replace(temporary, path)


def main() -> None:
    index, steps, stats_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with tf.trace_run(f"sender-{index}"):
        for j in range(steps):
            with tf.trace_step("step", input_data={"index": index, "j": j}) as r:
                r["output"] = j
            if j % 50 == 0:
                write_stats(stats_file)
                time.sleep(0.02)  # pace the workload so the daemon can die mid-stream
    delivered = tf.flush(120)
    write_stats(stats_file)
    print(json.dumps({"delivered": delivered, **tf.stats()}))


if __name__ == "__main__":
    main()
