#!/usr/bin/env python3
"""TraceForge demo: a research agent and a support-triage agent, traced into the daemon.

    python demo.py              # mock LLM, no API key needed
    python demo.py --runs 5     # more traffic

If no daemon is reachable it starts one in the background, and at the end it prints
the dashboard URL. Each round traces three runs, the way real pipelines use processes:

- ``research: <topic>``: three ``web_search`` steps on a process pool, nested under
  ``gather_sources`` although each runs in a worker process; then ``extract_facts``,
  ``summarize`` (``draft_summary``, ``refine_summary``), ``fact_check``, ``format_report``.
- ``support triage: <ticket>``, in a second process at the same time. Its ``moderate``
  step uses a local model with no price, so it shows as unpriced rather than $0, and
  ``draft_reply`` reuses a cached system prompt.
- ``research (error demo): <topic>``: ``draft_summary`` fails mid-pipeline and
  ``fallback_summary`` recovers, so an error trace and its recovery path show.

The mock LLM is deterministic: the same prompt always gives the same answer, token
counts and latency. With ANTHROPIC_API_KEY set (and no ``--mock``) the LLM steps call
Claude through the ``anthropic`` SDK, traced by ``traceforge_client.integrations.anthropic``.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Optional


def _prefer_installed_traceforge() -> None:
    """Run as ``python demo.py`` from a source checkout, Python puts the checkout first on
    the path, and the demo would trace with its sources rather than with the TraceForge
    that was installed (and compiled). Use the installed one when there is one."""
    from importlib.util import find_spec

    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        first = sys.path.pop(0)
        if find_spec("traceforge_client") is None or find_spec("traceforge_protocol") is None:
            sys.path.insert(0, first)  # not installed: the checkout it is


_prefer_installed_traceforge()

import traceforge_client  # noqa: E402 (after the path is settled)
from traceforge_client import pricing, propagate, trace_run, trace_step  # noqa: E402
from traceforge_client.config import load_config  # noqa: E402
from traceforge_client.storage import default_url  # noqa: E402
from traceforge_protocol.home import DEFAULT_HTTP_PORT, Home  # noqa: E402

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
LOCAL_GUARD = "llama-guard-3-1b"  # a local model: no price is known, so it is "unpriced"
UNAVAILABLE_MODEL = "claude-demo-unavailable"  # makes the real API fail in the error demo
TOPICS = ["climate change", "ocean acidification", "battery recycling", "urban heat islands"]
ERROR_TOPICS = ["quantum computing", "fusion energy"]
TICKETS = ["Export to CSV fails for large runs", "Dashboard shows no cost for my model",
           "Traces missing after a worker restart"]
PLAYBOOK_TOKENS = 1850  # the support playbook sent as a cached system prompt


# ---- the LLM: a deterministic mock, or Claude ----


@dataclass
class Reply:
    text: str
    model: str
    tokens_input: int
    tokens_output: int
    cache_read: int = 0
    cache_write: int = 0


class MockAPIError(Exception):
    """What the mock raises where the real API would answer 529 Overloaded."""


_SENTENCES = [
    "Several independent sources agree on the main trend.",
    "The most recent measurements are higher than the ten-year average.",
    "Estimates differ mainly in their assumptions about adoption rates.",
    "Two of the sources cite the same underlying dataset.",
    "Regional effects vary more than the global average suggests.",
    "Costs have fallen steadily while deployment has accelerated.",
    "The evidence for the long-term outlook is weaker than for current data.",
    "Policy changes explain part of the variation between countries.",
]


class MockLLM:
    """Claude's shape without Claude: token counts near each step's typical figures,
    realistic but short latencies, and everything derived from the prompt so every run
    is reproducible."""

    mode = "mock"
    errors: tuple = (MockAPIError,)

    def __init__(self) -> None:
        self._cached_prefixes: set = set()

    def complete(self, prompt: str, *, model: str, typical: tuple, fail: bool = False,
                 cached_prefix: int = 0) -> Reply:
        rng = random.Random(hashlib.sha256(f"{model}\n{prompt}".encode()).digest())
        tokens_input = max(1, typical[0] + rng.randint(-6, 6))
        tokens_output = max(1, typical[1] + rng.randint(-6, 6))
        time.sleep((0.04 + tokens_output * 0.0011) * rng.uniform(0.85, 1.2))
        if fail:
            raise MockAPIError("overloaded_error: Overloaded (HTTP 529); retry or fall back")
        cache_read = cache_write = 0
        if cached_prefix:  # the first call writes the prompt cache, later ones read it
            if (model, cached_prefix) in self._cached_prefixes:
                cache_read = cached_prefix
            else:
                cache_write = cached_prefix
                self._cached_prefixes.add((model, cached_prefix))
        sentences = max(1, min(len(_SENTENCES), tokens_output // 20))
        text = " ".join(rng.sample(_SENTENCES, k=sentences))
        return Reply(text, model, tokens_input, tokens_output, cache_read, cache_write)


class ClaudeLLM:
    """Real Claude calls; the integration records each as a child step with its tokens."""

    mode = "claude"

    def __init__(self) -> None:
        import anthropic

        from traceforge_client.integrations.anthropic import instrument

        self.client = instrument(anthropic.Anthropic())
        self.errors = (anthropic.APIError,)

    def complete(self, prompt: str, *, model: str, typical: tuple, fail: bool = False,
                 cached_prefix: int = 0) -> Reply:
        response = self.client.messages.create(
            model=UNAVAILABLE_MODEL if fail else model,
            max_tokens=max(256, typical[1] * 3),
            messages=[{"role": "user", "content": prompt}],
        )
        usage = response.usage
        text = "".join(block.text for block in response.content if block.type == "text")
        return Reply(text, response.model, usage.input_tokens, usage.output_tokens,
                     usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0)


def make_llm(mock: bool):
    if mock or not os.environ.get("ANTHROPIC_API_KEY"):
        return MockLLM()
    try:
        return ClaudeLLM()
    except ImportError:
        print("ANTHROPIC_API_KEY is set but the anthropic package is missing "
              "(pip install 'traceforge[anthropic]'); using the mock LLM.")
        return MockLLM()


# ---- the printed step tree ----


class Tree:
    """The step tree the demo prints: one line per step, indented by depth."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.lines: list = []
        self.cost = 0.0
        self.unpriced = 0
        self.failed = 0

    def add(self, depth: int, name: str, detail: str = "") -> None:
        self.lines.append(f"{'  ' * depth}{name:<{max(1, 24 - 2 * depth)}} {detail}".rstrip())

    def add_llm(self, depth: int, name: str, reply: Reply) -> None:
        cost = pricing.step_cost(reply.model, reply.tokens_input, reply.tokens_output,
                                 reply.cache_read, reply.cache_write)
        if cost is None:
            self.unpriced += 1
        else:
            self.cost += cost
        cached = ""
        if reply.cache_read or reply.cache_write:
            cached = f" (cache: {reply.cache_read} read, {reply.cache_write} written)"
        price = "unpriced" if cost is None else f"${cost:.6f}"
        self.add(depth, name, f"{reply.model} | {reply.tokens_input} tok in{cached}  "
                              f"{reply.tokens_output} tok out  {price}")

    def render(self, run_id: str, seconds: float) -> str:
        summary = f"${self.cost:.6f}"
        if self.unpriced:
            summary += f" + {self.unpriced} unpriced step{'s' * (self.unpriced > 1)}"
        if self.failed:
            summary += f", {self.failed} failed step{'s' * (self.failed > 1)} (recovered)"
        header = f"{self.title}   [{seconds:.2f} s, {summary}]"
        footer = f"  (run {run_id}, traced from pid {os.getpid()})"
        return "\n".join([header, *self.lines, footer, ""])


def llm_step(tree: Tree, depth: int, name: str, llm, prompt: str, *, model: str,
             typical: tuple, **options) -> str:
    """One LLM call as a step. The mock sets the step's tokens itself; with Claude the
    integration's child step holds them, so nothing is counted twice."""
    with trace_step(name, input_data={"prompt": prompt},
                    model=model if llm.mode == "mock" else None) as step:
        try:
            reply = llm.complete(prompt, model=model, typical=typical, **options)
        except llm.errors as exc:
            tree.failed += 1
            tree.add(depth, name, f"{model} | FAILED {type(exc).__name__}: {exc}")
            raise
        step["output"] = reply.text
        if llm.mode == "mock":
            step.update(model=reply.model, tokens_input=reply.tokens_input,
                        tokens_output=reply.tokens_output, tokens_cache_read=reply.cache_read,
                        tokens_cache_write=reply.cache_write)
    tree.add_llm(depth, name, reply)
    return reply.text


# ---- the pipelines ----


def web_search(query: str) -> dict:
    """A fake search tool. Runs in a pool worker process, under the caller's step."""
    rng = random.Random(hashlib.sha256(query.encode()).digest())
    with trace_step("web_search", input_data={"query": query}) as step:
        time.sleep(rng.uniform(0.08, 0.16))
        slug = query.replace(" ", "-")
        results = [
            {"title": f"{query.title()} ({i})", "url": f"https://example.org/{slug}/{i}"}
            for i in range(1, rng.randint(4, 6))
        ]
        step["output"] = {"results": results, "count": len(results)}
    return {"query": query, "results": results, "pid": os.getpid()}


def research(topic: str, llm, pool, round_no: int, barrier=None, error_demo: bool = False) -> str:
    """The research agent. Returns its printed step tree."""
    title = f"research (error demo): {topic}" if error_demo else f"research: {topic}"
    tree = Tree(title)
    started = time.monotonic()
    metadata = {"demo": "error" if error_demo else "research", "llm": llm.mode, "round": round_no}
    with trace_run(title, metadata=metadata) as run_id:
        meet(barrier)
        queries = [topic, f"{topic} recent data", f"{topic} future outlook"]
        with trace_step("gather_sources", input_data={"queries": queries}) as step:
            found = list(pool.map(propagate(web_search), queries))
            step["output"] = {"sources": sum(len(f["results"]) for f in found)}
        tree.add(1, "gather_sources", f"{len(queries)} searches on a process pool")
        for result in found:
            tree.add(2, "web_search", f'query: "{result["query"]}"  (pid {result["pid"]})')
        sources = "\n".join(r["url"] for f in found for r in f["results"])

        facts = llm_step(tree, 1, "extract_facts", llm,
                         f"List the key facts about {topic} in these sources:\n{sources}",
                         model=HAIKU, typical=(112, 48))
        with trace_step("summarize", input_data={"facts": facts}) as step:
            tree.add(1, "summarize", f"{SONNET} | (parent of the next two steps)")
            prompt = f"Draft a summary of {topic} from these facts:\n{facts}"
            try:
                draft = llm_step(tree, 2, "draft_summary", llm, prompt, model=SONNET,
                                 typical=(89, 95), fail=error_demo)
            except llm.errors:  # recovery path: a cheaper model drafts instead
                draft = llm_step(tree, 2, "fallback_summary", llm, prompt, model=HAIKU,
                                 typical=(89, 92))
            summary = llm_step(tree, 2, "refine_summary", llm,
                               f"Tighten this summary of {topic}:\n{draft}",
                               model=SONNET, typical=(106, 88))
            step["output"] = summary
        verdict = llm_step(tree, 1, "fact_check", llm,
                           f"Check this summary against the facts.\n{summary}\n{facts}",
                           model=SONNET, typical=(78, 42))
        llm_step(tree, 1, "format_report", llm,
                 f"Format a short report on {topic}.\n{summary}\nReview: {verdict}",
                 model=HAIKU, typical=(134, 118))
    return tree.render(run_id, time.monotonic() - started)


def triage(ticket: str, llm, round_no: int, barrier=None) -> str:
    """A second agent, run in its own process alongside the research agent."""
    title = f"support triage: {ticket}"
    tree = Tree(title)
    started = time.monotonic()
    metadata = {"demo": "triage", "llm": llm.mode, "round": round_no}
    with trace_run(title, metadata=metadata) as run_id:
        meet(barrier)
        category = llm_step(tree, 1, "classify_ticket", llm,
                            f"Classify this support ticket: {ticket}",
                            model=HAIKU, typical=(64, 9))
        with trace_step("search_docs", input_data={"query": ticket}) as step:
            time.sleep(0.06)
            step["output"] = {"pages": ["docs/cost.md", "docs/troubleshooting.md"]}
        tree.add(1, "search_docs", "2 pages")
        with trace_step("moderate", input_data={"text": ticket}, model=LOCAL_GUARD) as step:
            time.sleep(0.04)  # a local model: tokens are known, its price is not
            step.update(output={"flagged": False}, tokens_input=71, tokens_output=3)
        tree.add_llm(1, "moderate", Reply("not flagged", LOCAL_GUARD, 71, 3))
        llm_step(tree, 1, "draft_reply", llm,
                 f"Using the support playbook, reply to: {ticket} (category: {category[:40]})",
                 model=SONNET, typical=(96, 140), cached_prefix=PLAYBOOK_TOKENS)
    return tree.render(run_id, time.monotonic() - started)


def triage_worker(runs: int, barrier, mock: bool) -> None:
    """Entry point of the second pipeline's process."""
    llm = make_llm(mock)
    try:
        for round_no in range(runs):
            print(triage(TICKETS[round_no % len(TICKETS)], llm, round_no, barrier), flush=True)
    except llm.errors as exc:
        print(f"triage pipeline: the LLM call failed: {type(exc).__name__}: {exc}")
        barrier.abort()  # do not keep the research pipeline waiting
    traceforge_client.flush(timeout=10)


def meet(barrier) -> None:
    """Wait for the other pipeline, so the two runs really overlap in time."""
    if barrier is None:
        return
    try:
        barrier.wait(timeout=15)
    except threading.BrokenBarrierError:  # the other process is gone: carry on alone
        pass


# ---- the daemon ----


def daemon_reachable(address) -> bool:
    if address.kind == "unix":
        family, target = socket.AF_UNIX, address.path
    else:
        family, target = socket.AF_INET6 if ":" in address.host else socket.AF_INET, (
            address.host, address.port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(target)
        except OSError:
            return False
    return True


def daemon_command() -> str:
    """The installed ``traceforge-daemon`` beside this Python. A ``python -m`` from this
    folder would run the daemon from the source tree here instead of the installed one."""
    installed = os.path.join(os.path.dirname(sys.executable), "traceforge-daemon")
    return installed if os.path.exists(installed) else shutil.which("traceforge-daemon") or \
        "traceforge-daemon"


def ensure_daemon(args) -> bool:
    """Start a daemon in the background unless one is reachable. True if one is up."""
    address = load_config().address
    if daemon_reachable(address):
        return True
    if args.no_start or address.kind != "unix":
        print(f"No TraceForge daemon is reachable at {address}: traces will not be stored. "
              "Start one with `traceforge-daemon start`.")
        return False
    command = [daemon_command(), "start", "--detach"]
    if os.path.abspath(address.path) != str(Home.from_env().socket.absolute()):
        command += ["--socket", address.path]
    if args.http:
        command += ["--http", args.http]
    print(f"No TraceForge daemon is reachable at {address}; starting one in the background:\n"
          f"  {shlex.join(command)}", flush=True)
    result = subprocess.run(command)
    if result.returncode != 0 and not args.http:
        print(f"Port {DEFAULT_HTTP_PORT} may be taken; trying a free port.", flush=True)
        result = subprocess.run(command + ["--http", "127.0.0.1:0"])
    if result.returncode != 0:
        print(f"Could not start the daemon; see {Home.from_env().log_file}")
        return False
    print("It keeps running after the demo; stop it with `traceforge-daemon stop`.\n")
    return True


def dashboard_url() -> str:
    return default_url() + "/"


# ---- main ----


def parse_args(argv: Optional[list]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate sample traces into TraceForge.")
    parser.add_argument("--runs", type=int, default=1,
                        help="rounds to run; each traces three runs (default 1)")
    parser.add_argument("--mock", action="store_true",
                        help="use the mock LLM even if ANTHROPIC_API_KEY is set")
    parser.add_argument("--no-start", action="store_true",
                        help="do not start a daemon if none is reachable")
    parser.add_argument("--http", metavar="HOST:PORT",
                        help=f"dashboard address for a daemon this demo starts "
                             f"(default 127.0.0.1:{DEFAULT_HTTP_PORT})")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    up = ensure_daemon(args)
    llm = make_llm(args.mock)
    described = "mock (deterministic)" if llm.mode == "mock" else "Claude via the anthropic SDK"
    print(f"LLM: {described}\n")
    spawn = multiprocessing.get_context("spawn")  # no fork with threads running
    barrier = spawn.Barrier(2)
    second = spawn.Process(target=triage_worker, args=(args.runs, barrier, llm.mode == "mock"),
                           name="triage-pipeline")
    second.start()
    status = 0
    try:
        with ProcessPoolExecutor(max_workers=3, mp_context=spawn) as pool:
            for round_no in range(args.runs):
                topic = TOPICS[round_no % len(TOPICS)]
                print(research(topic, llm, pool, round_no, barrier=barrier), flush=True)
                error_topic = ERROR_TOPICS[round_no % len(ERROR_TOPICS)]
                print(research(error_topic, llm, pool, round_no, error_demo=True), flush=True)
    except llm.errors as exc:  # e.g. a wrong API key: say what to do, not a traceback
        print(f"The LLM call failed: {type(exc).__name__}: {exc}\n"
              "Check ANTHROPIC_API_KEY, or run `python demo.py --mock`. "
              "The failed steps are traced too.")
        barrier.abort()
        status = 1
    second.join(timeout=120)
    if second.exitcode != 0:
        print(f"The triage pipeline process exited with {second.exitcode}.")
    if up and not traceforge_client.flush(timeout=10):
        print("Some traces are still on their way to the daemon:", traceforge_client.stats())
    print(f"Open the dashboard: {dashboard_url()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
