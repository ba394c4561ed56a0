"""Assert on what your code traced, in your own tests, with no daemon running.

    from traceforge_client import testing

    def test_the_summary_is_traced():
        with testing.capture() as traced:
            research("climate change")           # your code, traced as usual
        summarize = traced.step("summarize")
        assert summarize.parent.name == "search_and_summarize"
        assert (summarize.tokens_input, summarize.status) == (89, "ok")
        assert traced.tree() == [("research", [("search_and_summarize", [
            ("web_search", []), ("summarize", [])])])]

Inside the ``with`` block this process's events go to memory instead of the daemon. They
take the real way up to the socket: the event queue, then the batch processor (which
redacts secrets as ``init()`` or ``TRACEFORGE_REDACT`` set it, so a capture holds what the
daemon would store), whose batches go to a ``MemoryLink`` (the in-memory counterpart of ``link.SocketLink``, as
OpenTelemetry's ``InMemorySpanExporter`` is of its exporters) that checks each batch as the
daemon does and acks it at once. Reading a ``Capture`` first waits for the events still on
their way (a flush, well under a millisecond), so there is nothing to flush by hand. On
exit, events go where they went before, and ``init()`` called inside the block changes
only that. Only this process is captured: child processes trace as they are configured.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import msgspec

from traceforge_protocol import wire

from . import runtime
from .batching import Acked, Batch, BatchProcessor, Link, Refused
from .config import DEFAULT_QUEUE_EVENTS

__all__ = ["Capture", "MemoryLink", "Run", "Step", "capture"]


class MemoryLink(Link):
    """A Link that keeps every batch it is given, in memory, and acks it at once.

    It refuses a batch the daemon would refuse (an event breaking a rule of
    protocol.md), so what it keeps is what the daemon would store.
    """

    description = "the in-memory capture"

    def __init__(self) -> None:
        self.events: list = []
        """Every event taken, in arrival order, as ``traceforge_protocol.wire`` structs."""
        self.reported_drops: Counter = Counter()
        """Drop counts the batches reported, by reason, as the daemon would record them."""
        self._replies: list = []
        self._lock = threading.Lock()
        self._arrived = threading.Event()

    def open(self) -> int:
        return wire.MAX_FRAME_BYTES

    def send(self, batch: Batch) -> None:
        body = wire.encode_frame(wire.EncodedBatch(1, batch.events, batch.dropped))[4:]
        try:
            message = wire.client_message_decoder.decode(body)
            problem = wire.invalid_id(message.events)
        except msgspec.DecodeError as exc:  # ValidationError included
            problem = str(exc)
        with self._lock:
            if problem is not None:
                self._replies.append(Refused(batch, f"{wire.INVALID_EVENT}: {problem}"))
            else:
                self.events.extend(message.events)
                self.reported_drops.update(message.dropped)
                self._replies.append(Acked((batch,)))
        self._arrived.set()

    def receive(self, timeout: float) -> list:
        if timeout and not self._replies:
            self._arrived.wait(timeout)
        with self._lock:
            replies, self._replies = self._replies, []
            self._arrived.clear()
        return replies

    def close(self, goodbye: bool = False) -> None:
        pass

    def clear(self) -> None:
        """Forget the events taken so far."""
        with self._lock:
            self.events.clear()


@dataclass(eq=False)
class Step:
    """One traced step as the daemon would store it; input, output and metadata decoded
    from their JSON. ``status`` is "ok", "error", or "running" until the step ends."""

    name: str
    step_id: str
    run_id: str
    parent_id: Optional[str]
    status: str
    input: Any = None
    output: Any = None
    metadata: Any = None
    model: Optional[str] = None
    tokens_input: int = 0
    tokens_output: int = 0
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0
    cost_usd: Optional[float] = None
    """None when unpriced: tokens were used but no price is known."""
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    traceback: Optional[str] = None
    start_ns: int = 0
    end_ns: Optional[int] = None
    parent: Optional["Step"] = field(default=None, repr=False)
    """The parent step, when it was captured too."""
    children: list = field(default_factory=list, repr=False)
    run: Optional["Run"] = field(default=None, repr=False)

    @property
    def error(self) -> Optional[str]:
        """"Type: message", as the daemon stores a failed step's error; None if it did not."""
        if self.status != "error":
            return None
        parts = [part for part in (self.error_type, self.error_message) if part]
        return ": ".join(parts) or "error"

    @property
    def duration_ms(self) -> Optional[float]:
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6


@dataclass(eq=False)
class Run:
    """One traced run. ``status`` is "success", "error" (it raised, or a step in it failed),
    or "running" until it ends. ``steps`` holds every step in start order, ``roots`` the
    top-level ones."""

    name: str
    run_id: str
    status: str
    error: Optional[str] = None
    metadata: Any = None
    start_ns: int = 0
    end_ns: Optional[int] = None
    steps: list = field(default_factory=list, repr=False)
    roots: list = field(default_factory=list, repr=False)


class Capture:
    """What this process traced while a ``capture()`` block ran; every read is current."""

    def __init__(self, link: MemoryLink, processor: BatchProcessor) -> None:
        self._link = link
        self._processor = processor
        self._built_from = -1
        self._runs: list = []
        self._steps: list = []

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for events still on their way; every read below does this first."""
        return self._processor.flush(timeout)

    @property
    def events(self) -> list:
        """The raw events, as ``traceforge_protocol.wire`` structs, in arrival order."""
        if not self.flush():
            raise RuntimeError("traceforge.testing: events still on their way after 5 s")
        return list(self._link.events)

    @property
    def runs(self) -> list:
        self._build()
        return list(self._runs)

    @property
    def steps(self) -> list:
        """Every step, in start order."""
        self._build()
        return list(self._steps)

    def steps_named(self, name: str) -> list:
        return [step for step in self.steps if step.name == name]

    def step(self, name: str) -> Step:
        """The one step called ``name``; fails if there is none or more than one."""
        found = self.steps_named(name)
        if len(found) != 1:
            raise AssertionError(f"{len(found)} steps named {name!r}; captured: "
                                 f"{sorted({step.name for step in self._steps})}")
        return found[0]

    def run(self, name: Optional[str] = None) -> Run:
        """The one run (called ``name``, if given); fails if there is none or several."""
        found = [run for run in self.runs if name is None or run.name == name]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} runs named {name!r}; captured: "
                                 f"{[run.name for run in self._runs]}")
        return found[0]

    def tree(self) -> list:
        """Names only, nested: [(run name, [(step name, [its children...]), ...]), ...]."""
        def node(step: Step) -> tuple:
            return (step.name, [node(child) for child in step.children])

        return [(run.name, [node(step) for step in run.roots]) for run in self.runs]

    @property
    def dropped(self) -> dict:
        """Events dropped while capturing, by reason (e.g. ``queue_full``); {} normally."""
        self.flush()
        return self._processor.stats()["dropped_total"]

    def clear(self) -> None:
        """Forget what was captured so far; keep capturing."""
        self.flush()
        self._link.clear()
        self._built_from = -1

    def _build(self) -> None:
        events = self.events
        if len(events) == self._built_from:
            return
        self._built_from = len(events)
        runs: dict = {}
        starts: dict = {}
        ends: dict = {}
        order: dict = {}
        for index, event in enumerate(events):
            kind = type(event)
            if kind in (wire.StepStart, wire.StepEnd):
                order.setdefault(event.step_id, index)
                (starts if kind is wire.StepStart else ends)[event.step_id] = event
            else:
                run = runs.get(event.run_id) or Run(event.name, event.run_id, "running",
                                                    start_ns=event.start_ns)
                run.metadata = _decode(event.metadata_json)
                if kind is wire.RunEnd:
                    run.status, run.error, run.end_ns = event.status, event.error, event.end_ns
                runs[event.run_id] = run
        steps = {step_id: _step(starts.get(step_id), ends.get(step_id)) for step_id in order}
        ordered = sorted(steps.values(), key=lambda step: (step.start_ns, order[step.step_id]))
        for step in ordered:
            step.parent = steps.get(step.parent_id) if step.parent_id else None
            if step.parent is not None:
                step.parent.children.append(step)
            run = runs.get(step.run_id)
            if run is None:  # the run started before the capture, or in another process
                run = runs[step.run_id] = Run("", step.run_id, "running")
            step.run = run
            run.steps.append(step)
            if step.parent is None:
                run.roots.append(step)
            if step.status == "error":
                run.status = "error"  # as the daemon marks it: a failed step fails its run
        self._steps = ordered
        self._runs = sorted(runs.values(), key=lambda run: run.start_ns)


def _decode(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


def _step(start: Optional[wire.StepStart], end: Optional[wire.StepEnd]) -> Step:
    first = start or end
    step = Step(first.name, first.step_id, first.run_id, first.parent_step_id, "running",
                input=_decode(start.input_json) if start else None,
                metadata=_decode(start.metadata_json) if start else None,
                model=start.model if start else None, start_ns=first.start_ns)
    if end is not None:
        step.status, step.end_ns = end.status, end.end_ns
        step.output = _decode(end.output_json)
        if end.metadata_json is not None:
            step.metadata = _decode(end.metadata_json)
        step.model = end.model or step.model
        step.tokens_input, step.tokens_output = end.tokens_input, end.tokens_output
        step.tokens_cache_read = end.tokens_cache_read
        step.tokens_cache_write = end.tokens_cache_write
        step.cost_usd = end.cost_usd
        step.error_type, step.error_message, step.traceback = (
            end.error_type, end.error_message, end.traceback)
    return step


@contextlib.contextmanager
def capture(max_queue_events: int = DEFAULT_QUEUE_EVENTS) -> Iterator[Capture]:
    """Route this process's events to memory for the ``with`` block; yields the Capture.

    Captures nest (the inner one sees what is traced inside it). Tracing is on inside the
    block even when TRACEFORGE_DISABLED is set. As a pytest fixture::

        @pytest.fixture
        def traced():
            with testing.capture() as captured:
                yield captured
    """
    link = MemoryLink()
    processor = BatchProcessor(lambda: link, max_queue_events, shutdown_timeout=5.0,
                               redactor=runtime.current_redactor())
    runtime.push(processor)
    try:
        yield Capture(link, processor)
    finally:
        runtime.pop(processor)
        processor.shutdown()  # delivers to memory whatever is still queued
