"""Parent tracking across asyncio tasks, threads and child processes, at volume."""

from __future__ import annotations

from collections import Counter

from conftest import ROOT

PROGRAMS = ROOT / "tests" / "programs"


def test_16_processes_by_fork_spawn_and_subprocess_store_16000_steps_once(daemon):
    result = daemon.run_python(
        f"import runpy, sys; sys.argv = ['fanout.py', '1000']; "
        f"runpy.run_path({str(PROGRAMS / 'fanout.py')!r}, run_name='__main__')",
        timeout=300,
    )
    run_id, fan_out_step = result.stdout.split()
    rows = daemon.query(
        "SELECT step_id, parent_step_id, step_name, pid, status FROM steps WHERE run_id = ?",
        (run_id,),
    )
    names = Counter(name for _, _, name, _, _ in rows)
    assert names == {"fan_out": 1, "worker": 16, "work": 16 * 999}
    assert len({step_id for step_id, *_ in rows}) == len(rows) == 16_001
    assert all(status == "ok" for *_, status in rows)

    [(parent_pid,)] = daemon.query(
        "SELECT pid FROM steps WHERE step_id = ?", (fan_out_step,)
    )
    workers = {step_id: pid for step_id, parent, name, pid, _ in rows if name == "worker"}
    assert all(parent == fan_out_step for _, parent, name, _, _ in rows if name == "worker")
    assert len(set(workers.values())) == 16 and parent_pid not in workers.values()
    children = Counter()
    for _, parent, name, pid, _ in rows:
        if name == "work":
            assert workers.get(parent) == pid, "a work step's parent is its own process's worker"
            children[parent] += 1
    assert set(children.values()) == {999}
    assert daemon.query("SELECT count(*) FROM steps") == [(16_001,)]


def test_50_asyncio_tasks_under_one_step_each_record_their_own_children(daemon):
    code = r'''
import asyncio, random
import traceforge_client as tf

async def task(i):
    with tf.trace_step(f"task-{i}") as r:
        for j in range(3):
            await asyncio.sleep(random.random() / 100)   # interleave the tasks
            with tf.trace_step(f"task-{i}-child-{j}"):
                await asyncio.sleep(random.random() / 100)
        r["output"] = i

async def main():
    with tf.trace_run("asyncio fan-out"):
        with tf.trace_step("gather") as r:
            await asyncio.gather(*(task(i) for i in range(50)))

asyncio.run(main())
assert tf.flush(10)
'''
    daemon.run_python(code)
    rows = daemon.query("SELECT step_id, parent_step_id, step_name FROM steps")
    by_name = {name: (step_id, parent) for step_id, parent, name in rows}
    gather_id = by_name["gather"][0]
    assert len(rows) == 1 + 50 + 150
    for i in range(50):
        task_id, task_parent = by_name[f"task-{i}"]
        assert task_parent == gather_id
        for j in range(3):
            assert by_name[f"task-{i}-child-{j}"][1] == task_id


def test_thread_pool_helpers_keep_the_parent(daemon):
    code = r'''
import threading
import traceforge_client as tf
from concurrent.futures import ThreadPoolExecutor

def job(i):
    with tf.trace_step(f"job-{i}"):
        pass

with tf.trace_run("threads"):
    with tf.trace_step("pool") as r:
        with tf.TracedThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(job, range(8)))
    with tf.trace_step("plain_pool"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(tf.propagate(job), range(8, 12)))
    with tf.trace_step("thread"):
        t = threading.Thread(target=tf.propagate(job), args=(12,))
        t.start(); t.join()
assert tf.flush(10)
'''
    daemon.run_python(code)
    rows = daemon.query("SELECT step_id, parent_step_id, step_name FROM steps")
    ids = {name: step_id for step_id, _, name in rows}
    parents = {name: parent for _, parent, name in rows}
    for i in range(8):
        assert parents[f"job-{i}"] == ids["pool"]
    for i in range(8, 12):
        assert parents[f"job-{i}"] == ids["plain_pool"]
    assert parents["job-12"] == ids["thread"]
    assert len(daemon.query("SELECT run_id FROM runs")) == 1


def test_process_pool_with_propagate_nests_and_loses_nothing_on_terminate(daemon):
    daemon.run_python(
        f"import runpy; runpy.run_path({str(PROGRAMS / 'pool_terminate.py')!r}, run_name='__main__')"
    )
    rows = daemon.query("SELECT step_id, parent_step_id, step_name FROM steps")
    search_all = next(step_id for step_id, _, name in rows if name == "search_all")
    searches = [parent for _, parent, name in rows if name == "search"]
    assert len(searches) == 6
    assert set(searches) == {search_all}
