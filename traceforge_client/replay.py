"""Re-run one recorded step, optionally with a different input, and record the re-run.

    from traceforge_client.replay import get_step_inputs, replay_step

    inputs = get_step_inputs(storage, step_id)
    print(inputs["input_data"])        # exactly what the step received
    print(inputs["original_output"])   # what it returned

    result = replay_step(storage, step_id, executor=my_llm_fn,
                         override_input={"query": "revised prompt"})
    storage.compare(result.original_run_id, result.run_id)

The replay is traced as a new run named ``replay: <step name>`` whose metadata links
it to the original step and run, so the dashboard and ``/api/compare`` can line the
two up. Replaying is only as deterministic as the executor, the model settings and
whatever outside state the step depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from traceforge_protocol.conventions import REPLAY_OF_RUN_KEY, REPLAY_OF_STEP_KEY

from .context import current_step_id
from .storage import Storage, get_storage
from .tracer import trace_run, trace_step
from .runtime import flush


@dataclass
class ReplayResult:
    """What a replay returned, and where it was recorded."""

    output: Any
    run_id: str
    step_id: Optional[str]
    original_run_id: str
    original_step_id: str
    input_data: Any
    recorded: bool
    """True when the replay's events reached the daemon within the flush timeout."""


def get_step_inputs(storage: Optional[Storage], step_id: str) -> dict:
    """The recorded name, input, model, parameters and output of a step.

    Raises ``storage.NotFound`` for an unknown step.
    """
    return (storage or get_storage()).get_step_inputs(step_id)


def replay_step(storage: Optional[Storage], step_id: str, executor: Callable[[Any], Any],
                override_input: Any = None, flush_timeout: float = 5.0) -> ReplayResult:
    """Call ``executor(input)`` with the step's recorded input, or ``override_input``
    when given, inside a traced run linked to the original.

    The executor's return value becomes the replayed step's output (and
    ``ReplayResult.output``); inside it, ``traceforge_client.current_step()`` can set
    tokens. An exception from the executor is recorded on the step and re-raised.
    """
    storage = storage or get_storage()
    inputs = storage.replay_inputs(step_id, override_input)
    input_data = inputs["input_data"]
    metadata = {
        REPLAY_OF_RUN_KEY: inputs["run_id"],
        REPLAY_OF_STEP_KEY: inputs["step_id"],
        "overridden": bool(inputs.get("overridden")),
        "parameters": inputs.get("parameters") or {},
    }
    with trace_run(f"replay: {inputs['step_name']}", metadata=metadata) as run_id:
        with trace_step(inputs["step_name"], input_data=input_data,
                        model=inputs.get("model")) as record:
            replay_step_id = current_step_id()
            output = executor(input_data)
            record["output"] = output
    recorded = flush(flush_timeout)
    return ReplayResult(
        output=output,
        run_id=run_id,
        step_id=replay_step_id,
        original_run_id=inputs["run_id"],
        original_step_id=inputs["step_id"],
        input_data=input_data,
        recorded=recorded,
    )
