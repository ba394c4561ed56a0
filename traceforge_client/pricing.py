"""The price table and the cost of a step, where users of the client find them.

The table and its rules live in ``traceforge_protocol.pricing``, shared with the daemon;
this module is how code that traces reaches them::

    from traceforge_client import pricing
    r["cost_usd"] = pricing.UNPRICED     # this step's price is not known
"""

from traceforge_protocol.pricing import (
    PRICES_CHECKED,
    PRICES_PER_MILLION,
    PRICES_SOURCE,
    UNPRICED,
    LongContext,
    ModelPrice,
    price_for,
    step_cost,
)

__all__ = [
    "PRICES_CHECKED", "PRICES_PER_MILLION", "PRICES_SOURCE", "UNPRICED", "LongContext",
    "ModelPrice", "price_for", "step_cost",
]
