"""Trace 5,000 steps with no daemon and a 1,000-event queue, then wait for a daemon.

Prints "traced" once the steps are done, then blocks in flush() until a daemon
appears and takes the buffered events; prints the final stats as JSON.
"""

import json

import traceforge_client as tf

tf.init(max_queue_events=1000)
with tf.trace_run("before the daemon"):
    for j in range(5000):
        with tf.trace_step("step", input_data={"j": j}):
            pass
print("traced", flush=True)
delivered = tf.flush(60)
print(json.dumps({"delivered": delivered, **tf.stats()}), flush=True)
