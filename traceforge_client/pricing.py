"""What a step cost, from its tokens and either the caller's prices or the price table.

The price table for known models arrives with the demo and Anthropic issue; until a
model has a price, a step that used tokens is *unpriced* (None), never a silent $0.
"""

from __future__ import annotations

from typing import Optional

PRICES_PER_MILLION: dict[str, dict[str, float]] = {}
"""model -> {"input", "output", "cache_write", "cache_read"} in USD per million tokens."""


def step_cost(
    model: Optional[str],
    tokens_input: int,
    tokens_output: int,
    tokens_cache_read: int = 0,
    tokens_cache_write: int = 0,
    cost_per_input_token: float = 0.0,
    cost_per_output_token: float = 0.0,
) -> Optional[float]:
    """USD for one step, or None when tokens were used but no price is known."""
    if cost_per_input_token or cost_per_output_token:
        return tokens_input * cost_per_input_token + tokens_output * cost_per_output_token
    if not (tokens_input or tokens_output or tokens_cache_read or tokens_cache_write):
        return 0.0
    prices = PRICES_PER_MILLION.get(model or "")
    if prices is None:
        return None
    return (
        tokens_input * prices["input"]
        + tokens_output * prices["output"]
        + tokens_cache_read * prices["cache_read"]
        + tokens_cache_write * prices["cache_write"]
    ) / 1_000_000
