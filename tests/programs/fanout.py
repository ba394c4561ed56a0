"""16 processes x 1,000 steps under one step, started by fork, spawn and subprocess.

Usage: python fanout.py STEPS_PER_PROCESS   (prints the run id and the fan-out step id)
Each child opens one ``worker`` step (its parent: the fan-out step in this process)
and STEPS_PER_PROCESS - 1 ``work`` steps under it.
"""

import multiprocessing
import os
import subprocess
import sys

import traceforge_client as tf


def work(index: int, steps: int) -> None:
    with tf.trace_step("worker", input_data={"index": index, "pid": os.getpid()}):
        for j in range(steps - 1):
            with tf.trace_step("work", input_data={"index": index, "j": j}) as r:
                r["output"] = j


def main() -> None:
    steps = int(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "--child":
        work(int(sys.argv[3]), steps)
        return
    with tf.trace_run("fanout") as run_id:
        with tf.trace_step("fan_out"):
            fan_out_step = tf.current_step_id()
            processes, children = [], []
            for index in range(16):
                kind = ("fork", "spawn", "subprocess")[index % 3]
                if kind == "subprocess":
                    children.append(subprocess.Popen(
                        [sys.executable, __file__, str(steps), "--child", str(index)]
                    ))
                else:
                    context = multiprocessing.get_context(kind)
                    process = context.Process(target=work, args=(index, steps))
                    process.start()
                    processes.append(process)
            for process in processes:
                process.join()
                assert process.exitcode == 0, process.exitcode
            for child in children:
                assert child.wait() == 0
    assert tf.flush(30)
    print(run_id, fan_out_step)


if __name__ == "__main__":
    main()
