"""A fork pool created in one step, used in another, then terminated (what `with Pool()`
does on exit): the searches must nest under the step that submitted them and none may
be lost to the workers' SIGTERM."""

import multiprocessing
import os

import traceforge_client as tf


def search(query):
    with tf.trace_step("search", input_data={"query": query}) as r:
        r["output"] = os.getpid()
    return os.getpid()


if __name__ == "__main__":
    with tf.trace_run("pool"):
        with tf.trace_step("before_pool"):
            pool = multiprocessing.get_context("fork").Pool(3)  # workers forked here
        with tf.trace_step("search_all"):
            pids = pool.map(tf.propagate(search), ["a", "b", "c", "d", "e", "f"])
        pool.terminate()
    assert tf.flush(10)
