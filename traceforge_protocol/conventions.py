"""Run metadata keys that mean something to the daemon.

A replayed run carries the run and step it replays in its metadata; the daemon indexes
the two keys (schema version 2), and the run comparison pairs a replay with its
original through them. Any client may set them; ``traceforge_client.replay`` does.
"""

REPLAY_OF_RUN_KEY = "traceforge.replay_of_run_id"
REPLAY_OF_STEP_KEY = "traceforge.replay_of_step_id"
