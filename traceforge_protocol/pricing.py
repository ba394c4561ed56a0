"""What a step cost: its tokens times the caller's prices or the price table below.

Shared by both sides: the client prices every step it traces, and the daemon prices
spans that arrive over OTLP without a cost. Users reach it as ``traceforge_client.pricing``.

Anthropic reports four kinds of token and prices each differently. ``input_tokens``
already *excludes* the tokens read from the prompt cache (``cache_read_input_tokens``)
and those written to it (``cache_creation_input_tokens``), so each token is priced
exactly once, at the price of its kind. Adding the cache counts to the input count
before pricing is the classic double-counting bug; nothing here does that.

A model with no known price makes a step *unpriced* (None), never a silent $0.00.

To update prices, edit ``PRICES_PER_MILLION`` and ``PRICES_CHECKED``; nothing else
holds a price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

UNPRICED = float("nan")
"""Set a step's ``cost_usd`` to this to store it as unpriced (NULL) even though its model
has a price, e.g. for a mode the table does not cover. Never shown as $0."""

PRICES_CHECKED = "2026-11-25"
"""When the table below was last compared with PRICES_SOURCE."""

PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"


@dataclass(frozen=True)
class LongContext:
    """Rates for large prompts: past ``above_tokens`` prompt tokens (input plus cache
    reads and writes) every token of the request is billed at the higher rate."""

    above_tokens: int
    input_factor: float  # also applies to cache reads and writes
    output_factor: float


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens, standard (non-batch) API rates."""

    input: float
    output: float
    cache_write: float  # 5-minute cache writes, the default TTL
    cache_write_1h: float
    cache_read: float  # cache hits and refreshes
    long_context: Optional[LongContext] = None


def _claude(input: float, output: float, long_context: Optional[LongContext] = None) -> ModelPrice:
    """Anthropic's cache multipliers: 5-minute writes 1.25x, 1-hour writes 2x, reads 0.1x
    of the input price (the pricing page lists them per model; they match these)."""
    return ModelPrice(
        input=input,
        output=output,
        cache_write=round(input * 1.25, 6),
        cache_write_1h=round(input * 2, 6),
        cache_read=round(input * 0.1, 6),
        long_context=long_context,
    )


_SONNET_4_LONG_CONTEXT = LongContext(above_tokens=200_000, input_factor=2.0, output_factor=1.5)

PRICES_PER_MILLION: dict[str, ModelPrice] = {
    "claude-opus-5": _claude(5.0, 25.0),
    "claude-opus-4-8": _claude(5.0, 25.0),
    "claude-opus-4-7": _claude(5.0, 25.0),
    "claude-opus-4-6": _claude(5.0, 25.0),
    "claude-opus-4-5": _claude(5.0, 25.0),
    "claude-opus-4-1": _claude(15.0, 75.0),
    "claude-opus-4": _claude(15.0, 75.0),
    "claude-opus-4-0": _claude(15.0, 75.0),
    "claude-sonnet-5": _claude(2.0, 10.0),
    "claude-sonnet-4-6": _claude(3.0, 15.0),
    "claude-sonnet-4-5": _claude(3.0, 15.0, _SONNET_4_LONG_CONTEXT),
    "claude-sonnet-4": _claude(3.0, 15.0, _SONNET_4_LONG_CONTEXT),
    "claude-sonnet-4-0": _claude(3.0, 15.0, _SONNET_4_LONG_CONTEXT),
    "claude-3-7-sonnet": _claude(3.0, 15.0),
    "claude-3-5-sonnet": _claude(3.0, 15.0),
    "claude-haiku-4-5": _claude(1.0, 5.0),
    "claude-3-5-haiku": _claude(0.80, 4.0),
    "claude-3-opus": _claude(15.0, 75.0),
    # Haiku 3's cache prices are not the usual multiples of its input price.
    "claude-3-haiku": ModelPrice(
        input=0.25, output=1.25, cache_write=0.30, cache_write_1h=0.50, cache_read=0.03
    ),
}
"""Canonical model id (no date suffix) -> prices. Models not listed are unpriced."""

_SUFFIXES = re.compile(r"(?:-\d{8}|@\d{8}|-latest)$")


def price_for(model: Optional[str]) -> Optional[ModelPrice]:
    """The table's price for ``model``, or None.

    Matches the id as given and without a date or ``-latest`` suffix, so
    ``claude-haiku-4-5-20251001``, ``claude-haiku-4-5`` and Vertex's
    ``claude-haiku-4-5@20251001`` all find the same row.
    """
    if not model:
        return None
    name = model.strip().lower()
    if name.startswith("anthropic/"):
        name = name[len("anthropic/"):]
    price = PRICES_PER_MILLION.get(name)
    if price is None:
        price = PRICES_PER_MILLION.get(_SUFFIXES.sub("", name))
    return price


def step_cost(
    model: Optional[str],
    tokens_input: int,
    tokens_output: int,
    tokens_cache_read: int = 0,
    tokens_cache_write: int = 0,
    cost_per_input_token: float = 0.0,
    cost_per_output_token: float = 0.0,
    *,
    tokens_cache_write_1h: int = 0,
) -> Optional[float]:
    """USD for one step, or None when tokens were used but no price is known.

    Args:
        tokens_input: uncached input tokens only (Anthropic's ``input_tokens``).
        tokens_cache_read, tokens_cache_write: cache hits and all cache writes.
        cost_per_input_token, cost_per_output_token: the caller's prices in USD per
            token; when given they replace the table's input and output prices, and
            cached tokens are priced at the same ratio to the input price as the
            table uses for that model (Anthropic's 0.1x / 1.25x / 2x if not listed).
        tokens_cache_write_1h: how many of ``tokens_cache_write`` used the 1-hour TTL.
    """
    if not (tokens_input or tokens_output or tokens_cache_read or tokens_cache_write):
        return 0.0
    table = price_for(model)
    if cost_per_input_token or cost_per_output_token:
        return _user_priced_cost(
            table, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write,
            tokens_cache_write_1h, cost_per_input_token, cost_per_output_token,
        )
    if table is None:
        return None
    cache_write_1h = min(max(tokens_cache_write_1h, 0), tokens_cache_write)
    cache_write_5m = tokens_cache_write - cache_write_1h
    input_factor = output_factor = 1.0
    long_context = table.long_context
    prompt_tokens = tokens_input + tokens_cache_read + tokens_cache_write
    if long_context is not None and prompt_tokens > long_context.above_tokens:
        input_factor, output_factor = long_context.input_factor, long_context.output_factor
    per_million = (
        input_factor * (
            tokens_input * table.input
            + tokens_cache_read * table.cache_read
            + cache_write_5m * table.cache_write
            + cache_write_1h * table.cache_write_1h
        )
        + output_factor * tokens_output * table.output
    )
    return per_million / 1_000_000


def _user_priced_cost(
    table: Optional[ModelPrice],
    tokens_input: int,
    tokens_output: int,
    tokens_cache_read: int,
    tokens_cache_write: int,
    tokens_cache_write_1h: int,
    cost_per_input_token: float,
    cost_per_output_token: float,
) -> float:
    reference = table or _claude(1.0, 5.0)  # only its cache-to-input ratios are used
    cache_write_1h = min(max(tokens_cache_write_1h, 0), tokens_cache_write)
    cache_write_5m = tokens_cache_write - cache_write_1h
    cached_input_equivalent = (
        tokens_cache_read * reference.cache_read
        + cache_write_5m * reference.cache_write
        + cache_write_1h * reference.cache_write_1h
    ) / reference.input
    return (
        (tokens_input + cached_input_equivalent) * cost_per_input_token
        + tokens_output * cost_per_output_token
    )
