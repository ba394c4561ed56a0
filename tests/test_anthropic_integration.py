"""The Anthropic integration, driven through the real ``anthropic`` SDK.

A local HTTP server answers like the Messages API (JSON, SSE streams and errors), and
the SDK's clients point their ``base_url`` at it, so the SDK's own request, retry and
stream-parsing code runs and nothing reaches the internet. Steps go to a real daemon
and every assertion reads the stored rows back from its SQLite file.
"""

from __future__ import annotations

import asyncio
import json

import fake_messages_api
import pytest
from fake_messages_api import EXPECTED_COST, SERVED_MODEL

anthropic = pytest.importorskip("anthropic")

import traceforge_client  # noqa: E402
from traceforge_client import pricing, trace_run, trace_step  # noqa: E402
from traceforge_client.integrations.anthropic import (  # noqa: E402
    CREATE_STEP,
    STREAM_STEP,
    instrument,
)


@pytest.fixture
def messages_api():
    with fake_messages_api.serve() as server:
        yield server


@pytest.fixture
def traced(daemon):
    """This test process traces into ``daemon``; steps() reads them back once stored."""
    traceforge_client.init(f"unix://{daemon.socket}")

    def steps(run_id: str) -> dict:
        assert traceforge_client.flush(timeout=10), traceforge_client.stats()
        rows = daemon.query(
            "SELECT step_name, step_id, parent_step_id, status, model, input_data, "
            "output_data, tokens_input, tokens_output, tokens_cache_read, "
            "tokens_cache_write, cost_usd, error_type, metadata FROM steps WHERE run_id = ?",
            (run_id,),
        )
        keys = ("name", "id", "parent", "status", "model", "input", "output", "tokens_input",
                "tokens_output", "cache_read", "cache_write", "cost", "error_type", "metadata")
        result: dict = {}
        for row in rows:
            step = dict(zip(keys, row))
            for field in ("input", "output", "metadata"):
                step[field] = json.loads(step[field]) if step[field] else None
            result.setdefault(step["name"], []).append(step)
        return result

    yield steps
    traceforge_client.init()  # back to the default daemon address for later tests


def _client(messages_api, async_client: bool = False):
    cls = anthropic.AsyncAnthropic if async_client else anthropic.Anthropic
    return instrument(cls(base_url=messages_api.url, api_key="test", max_retries=0))


PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def test_create_becomes_a_nested_step_with_tokens_cost_and_the_prompt(messages_api, traced):
    client = _client(messages_api)
    with trace_run("create") as run_id:
        with trace_step("answer"):
            message = client.messages.create(
                model="claude-haiku-4-5", max_tokens=100, stop_sequences=["END"],
                system="Be brief.", messages=PROMPT,
            )
    assert message.content[0].text == "Paris is the capital of France."
    assert messages_api.requests[0]["messages"] == PROMPT

    steps = traced(run_id)
    (call,) = steps[CREATE_STEP]
    assert call["parent"] == steps["answer"][0]["id"]
    assert call["status"] == "ok"
    assert call["model"] == SERVED_MODEL
    assert (call["tokens_input"], call["tokens_output"]) == (25, 12)
    assert (call["cache_read"], call["cache_write"]) == (1000, 200)
    assert call["cost"] == pytest.approx(EXPECTED_COST)
    assert call["input"]["messages"] == PROMPT
    assert call["input"]["system"] == "Be brief."
    assert call["input"]["stop_sequences"] == ["END"]
    assert call["output"]["text"] == "Paris is the capital of France."
    assert call["output"]["tool_calls"] == [
        {"id": "toolu_1", "name": "lookup", "input": {"city": "Paris"}}]
    metadata = call["metadata"]
    assert metadata["model_requested"] == "claude-haiku-4-5"
    assert metadata["model_served"] == SERVED_MODEL
    assert metadata["stop_reason"] == "tool_use"
    assert metadata["request_id"] == "req_test_1"
    assert metadata["prices_checked"] == pricing.PRICES_CHECKED


def test_streamed_create_is_one_step_that_ends_with_the_stream(messages_api, traced):
    client = _client(messages_api)
    with trace_run("stream") as run_id:
        with trace_step("answer"):
            events = client.messages.create(
                model="claude-haiku-4-5", max_tokens=100, messages=PROMPT, stream=True)
            seen = []
            for event in events:
                # Work done between chunks is the caller's, not part of the API call.
                with trace_step("handle_event"):
                    seen.append(event.type)
    assert seen[0] == "message_start" and seen[-1] == "message_stop"

    steps = traced(run_id)
    (call,) = steps[CREATE_STEP]
    answer_id = steps["answer"][0]["id"]
    assert call["parent"] == answer_id
    assert {s["parent"] for s in steps["handle_event"]} == {answer_id}
    assert call["status"] == "ok"
    assert call["model"] == SERVED_MODEL
    assert (call["tokens_input"], call["tokens_output"]) == (25, 12)
    assert (call["cache_read"], call["cache_write"]) == (1000, 200)
    assert call["cost"] == pytest.approx(EXPECTED_COST)
    assert call["output"]["text"] == "Paris is the capital."
    assert call["output"]["tool_calls"] == [
        {"id": "toolu_1", "name": "lookup", "input": {"city": "Paris"}}]
    assert call["metadata"]["stream"] is True
    assert call["metadata"]["complete"] is True
    assert call["metadata"]["stop_reason"] == "tool_use"
    assert call["metadata"]["request_id"] == "req_stream_1"
    assert call["metadata"]["time_to_first_token_ms"] >= 0


def test_messages_stream_helper_is_traced_from_enter_to_exit(messages_api, traced):
    client = _client(messages_api)
    with trace_run("helper") as run_id:
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=100, messages=PROMPT) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "Paris is the capital."
    assert final.usage.output_tokens == 12

    (call,) = traced(run_id)[STREAM_STEP]
    assert call["parent"] is None
    assert call["status"] == "ok"
    assert (call["tokens_input"], call["tokens_output"]) == (25, 12)
    assert call["cost"] == pytest.approx(EXPECTED_COST)
    assert call["output"]["text"] == "Paris is the capital."
    assert call["output"]["tool_calls"][0]["input"] == {"city": "Paris"}
    assert call["metadata"]["complete"] is True


def test_api_error_is_recorded_on_the_step_and_reraised(messages_api, traced, daemon):
    client = _client(messages_api)
    with trace_run("error") as run_id:
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.messages.create(model="claude-overloaded", max_tokens=10, messages=PROMPT)
    assert raised.value.status_code == 529

    (call,) = traced(run_id)[CREATE_STEP]
    assert call["status"] == "error"
    assert call["error_type"] == type(raised.value).__name__
    assert call["metadata"]["status_code"] == 529
    assert call["metadata"]["error_type"] == "overloaded_error"
    assert call["cost"] == 0.0  # no tokens were used, so nothing is owed
    assert daemon.query("SELECT status FROM runs WHERE run_id = ?", (run_id,)) == [("error",)]


def test_error_event_in_the_middle_of_a_stream_fails_the_step(messages_api, traced):
    client = _client(messages_api)
    with trace_run("stream error") as run_id:
        events = client.messages.create(
            model="claude-stream-fails", max_tokens=10, messages=PROMPT, stream=True)
        with pytest.raises(anthropic.APIStatusError):
            for _ in events:
                pass

    (call,) = traced(run_id)[CREATE_STEP]
    assert call["status"] == "error"
    assert call["metadata"]["error_type"] == "overloaded_error"


def test_async_client_traces_create_streams_and_the_stream_helper(messages_api, traced):
    client = _client(messages_api, async_client=True)

    async def pipeline() -> str:
        async with trace_run("async") as run_id:
            async with trace_step("answer"):
                await client.messages.create(
                    model="claude-haiku-4-5", max_tokens=100, messages=PROMPT)
                events = await client.messages.create(
                    model="claude-haiku-4-5", max_tokens=100, messages=PROMPT, stream=True)
                async for _ in events:
                    pass
                async with client.messages.stream(
                    model="claude-haiku-4-5", max_tokens=100, messages=PROMPT) as stream:
                    await stream.get_final_message()
        return run_id

    run_id = asyncio.run(pipeline())
    steps = traced(run_id)
    answer_id = steps["answer"][0]["id"]
    calls = steps[CREATE_STEP] + steps[STREAM_STEP]
    assert len(calls) == 3
    for call in calls:
        assert call["parent"] == answer_id
        assert call["status"] == "ok"
        assert (call["tokens_input"], call["tokens_output"]) == (25, 12)
        assert call["cost"] == pytest.approx(EXPECTED_COST)
    assert sorted(c["metadata"]["stream"] for c in calls) == [False, True, True]


def test_unknown_model_is_stored_unpriced_not_free(messages_api, traced):
    client = _client(messages_api)
    with trace_run("unpriced") as run_id:
        client.messages.create(model="claude-unreleased-9", max_tokens=10, messages=PROMPT)
    (call,) = traced(run_id)[CREATE_STEP]
    assert call["tokens_input"] == 25
    assert call["cost"] is None


def test_fast_mode_usage_is_unpriced_rather_than_priced_at_standard_rates(
        messages_api, traced):
    client = _client(messages_api)
    with trace_run("fast") as run_id:
        client.messages.create(model="claude-fast", max_tokens=10, messages=PROMPT)
    (call,) = traced(run_id)[CREATE_STEP]
    assert call["cost"] is None
    assert "fast mode" in call["metadata"]["unpriced_reason"]


def test_clients_made_with_with_options_are_traced_too(messages_api, traced):
    client = _client(messages_api).with_options(timeout=5)
    instrument(client)  # a second call is harmless
    with trace_run("options") as run_id:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=PROMPT)
    assert len(traced(run_id)[CREATE_STEP]) == 1
    assert len(messages_api.requests) == 1

