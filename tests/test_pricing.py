"""The price table and step_cost: cached tokens priced once, unknown models unpriced,
caller prices win; and the same rules end to end through a real daemon."""

from __future__ import annotations

import datetime

import pytest

from traceforge_client import pricing
from traceforge_client.pricing import PRICES_PER_MILLION, price_for, step_cost


@pytest.mark.parametrize("model", [
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-haiku-4-5@20251001",
    "Claude-Haiku-4-5",
    "anthropic/claude-haiku-4-5",
])
def test_model_ids_match_with_and_without_date_suffixes(model):
    assert price_for(model) is PRICES_PER_MILLION["claude-haiku-4-5"]


def test_older_dated_ids_and_latest_aliases_find_their_family():
    assert price_for("claude-sonnet-4-20250514") is PRICES_PER_MILLION["claude-sonnet-4"]
    assert price_for("claude-3-5-haiku-latest") is PRICES_PER_MILLION["claude-3-5-haiku"]
    assert price_for("claude-opus-4-1-20250805").output == 75.0


@pytest.mark.parametrize("model", [None, "", "gpt-4o", "claude-haiku-4-5-turbo", "claude"])
def test_unknown_models_have_no_price(model):
    assert price_for(model) is None


def test_cached_tokens_are_priced_once_at_their_own_rates():
    # Anthropic's input_tokens excludes cache reads and writes: 100 + 1000 + 200 tokens
    # of prompt, each kind at its own price (Sonnet 4.5: $3, $0.30, $3.75 per MTok).
    cost = step_cost("claude-sonnet-4-5", 100, 50, tokens_cache_read=1000,
                     tokens_cache_write=200)
    assert cost == pytest.approx((100 * 3 + 50 * 15 + 1000 * 0.30 + 200 * 3.75) / 1e6)
    uncached = step_cost("claude-sonnet-4-5", 1300, 50)
    assert cost < uncached  # caching must make the same prompt cheaper, never dearer


def test_one_hour_cache_writes_cost_twice_the_input_price():
    cost = step_cost("claude-haiku-4-5", 0, 0, tokens_cache_write=300, tokens_cache_write_1h=100)
    assert cost == pytest.approx((200 * 1.25 + 100 * 2.0) / 1e6)


def test_long_prompts_switch_sonnet_4_5_to_long_context_rates():
    below = step_cost("claude-sonnet-4-5", 150_000, 1000, tokens_cache_read=50_000)
    above = step_cost("claude-sonnet-4-5", 150_000, 1000, tokens_cache_read=50_001)
    assert below == pytest.approx((150_000 * 3 + 50_000 * 0.3 + 1000 * 15) / 1e6)
    assert above == pytest.approx((2 * (150_000 * 3 + 50_001 * 0.3) + 1.5 * 1000 * 15) / 1e6)


def test_unknown_model_with_tokens_is_unpriced_but_without_tokens_costs_nothing():
    assert step_cost("my-local-llama", 10, 10) is None
    assert step_cost("my-local-llama", 0, 0, tokens_cache_read=5) is None
    assert step_cost("my-local-llama", 0, 0) == 0.0
    assert step_cost(None, 0, 0) == 0.0


def test_caller_prices_override_the_table_and_scale_cached_tokens():
    cost = step_cost("claude-sonnet-4-6", 1000, 100, 0, 0, 1e-6, 2e-6)
    assert cost == pytest.approx(1000 * 1e-6 + 100 * 2e-6)
    with_cache = step_cost("claude-sonnet-4-6", 1000, 100, 500, 0, 1e-6, 2e-6)
    assert with_cache == pytest.approx(cost + 500 * 0.1 * 1e-6)  # the table's 0.1x ratio
    # A model the table does not know still gets a price when the caller gives one.
    assert step_cost("my-local-llama", 10, 10, 0, 0, 1e-6, 1e-6) == pytest.approx(20e-6)


def test_the_table_is_consistent_and_says_when_it_was_checked():
    checked = datetime.date.fromisoformat(pricing.PRICES_CHECKED)
    assert datetime.date(2025, 10, 1) <= checked <= datetime.date.today()
    assert pricing.PRICES_SOURCE.startswith("https://")
    for model, price in PRICES_PER_MILLION.items():
        assert model == model.lower() and not model[-8:].isdigit(), model
        assert 0 < price.cache_read < price.input < price.cache_write <= price.cache_write_1h
        assert price.output > price.input, model


def test_the_store_keeps_unpriced_steps_as_null_and_prices_the_rest(daemon):
    daemon.run_python(
        "from traceforge_client import trace_run, trace_step, flush\n"
        "with trace_run('costs'):\n"
        "    with trace_step('priced', model='claude-haiku-4-5-20251001') as r:\n"
        "        r['tokens_input'], r['tokens_output'] = 1000, 100\n"
        "        r['tokens_cache_read'] = 2000\n"
        "    with trace_step('unpriced', model='local-llama-3') as r:\n"
        "        r['tokens_input'], r['tokens_output'] = 10, 10\n"
        "    with trace_step('user_priced', model='local-llama-3',\n"
        "                    cost_per_input_token=1e-6, cost_per_output_token=1e-6) as r:\n"
        "        r['tokens_input'], r['tokens_output'] = 10, 10\n"
        "    with trace_step('tool'):\n"
        "        pass\n"
        "assert flush(10)\n"
    )
    costs = dict(daemon.query("SELECT step_name, cost_usd FROM steps"))
    assert costs["priced"] == pytest.approx((1000 * 1.0 + 100 * 5.0 + 2000 * 0.1) / 1e6)
    assert costs["unpriced"] is None
    assert costs["user_priced"] == pytest.approx(20e-6)
    assert costs["tool"] == 0.0
    # What a run total needs to say "1 step unpriced" instead of hiding it in a sum.
    assert daemon.query(
        "SELECT COUNT(*) - COUNT(cost_usd), SUM(cost_usd) > 0 FROM steps") == [(1, 1)]
