"""Every span attribute name TraceForge writes or reads, each defined once.

Three vocabularies, because LLM tools read different ones:

- OpenTelemetry GenAI semantic conventions (``gen_ai.*``, Development status; names as of
  semantic-conventions v1.41, with the deprecated names older libraries still send);
- OpenInference (``openinference.span.kind``, ``llm.*``, ``input.*``, ``output.*``), which
  Arize Phoenix reads;
- TraceForge's own (``traceforge.*``), the source of truth for what TraceForge stored.

Token counts differ in meaning: GenAI's ``input_tokens`` and OpenInference's
``token_count.prompt`` include cached input, TraceForge's ``tokens_input`` (Anthropic's
``input_tokens``) does not. OpenTelemetry has no cost attribute: ``gen_ai.usage.cost``
is the name Langfuse reads, ``llm.cost.*`` the one Phoenix reads.
"""

from __future__ import annotations

# ---- OpenTelemetry GenAI ----
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated in v1.37 for gen_ai.provider.name
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_COST = "gen_ai.usage.cost"  # not in the registry; Langfuse's name
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"  # deprecated names, still read
GEN_AI_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
GEN_AI_CACHE_READ_OLD = "gen_ai.usage.cache_read_input_tokens"  # OpenLLMetry's
GEN_AI_CACHE_CREATION_OLD = "gen_ai.usage.cache_creation_input_tokens"
ERROR_TYPE = "error.type"

CHAT = "chat"
"""``gen_ai.operation.name`` of a step that called a model."""

# ---- OpenInference ----
OI_SPAN_KIND = "openinference.span.kind"
OI_LLM, OI_CHAIN = "LLM", "CHAIN"
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_PROMPT_TOKENS = "llm.token_count.prompt"
LLM_COMPLETION_TOKENS = "llm.token_count.completion"
LLM_TOTAL_TOKENS = "llm.token_count.total"
LLM_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
LLM_COST_TOTAL = "llm.cost.total"
LLM_COST_PROMPT = "llm.cost.prompt"
LLM_COST_COMPLETION = "llm.cost.completion"
INPUT_VALUE = "input.value"
INPUT_MIME = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME = "output.mime_type"
JSON_MIME = "application/json"
TEXT_MIME = "text/plain"

# ---- TraceForge ----
TF_RUN_NAME = "traceforge.run.name"
TF_STATUS = "traceforge.status"
TF_COST = "traceforge.cost.usd"
TF_UNPRICED = "traceforge.cost.unpriced"
TF_METADATA = "traceforge.metadata"
TF_PID = "traceforge.pid"
TF_HOST = "traceforge.host"
TF_LATENCY = "traceforge.latency_ms"

# ---- OpenTelemetry general ----
SERVICE_NAME = "service.name"
PROCESS_PID = "process.pid"
HOST_NAME = "host.name"
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

DEFAULT_SERVICE = "traceforge"
"""``service.name`` of a run that names none (set ``service.name`` in its metadata)."""

# ---- what ingest reads, in order of preference ----
INPUT_TOKENS = (GEN_AI_INPUT_TOKENS, LLM_PROMPT_TOKENS, GEN_AI_PROMPT_TOKENS)
OUTPUT_TOKENS = (GEN_AI_OUTPUT_TOKENS, LLM_COMPLETION_TOKENS, GEN_AI_COMPLETION_TOKENS)
CACHE_READ = (GEN_AI_CACHE_READ, LLM_CACHE_READ, GEN_AI_CACHE_READ_OLD)
CACHE_WRITE = (GEN_AI_CACHE_CREATION, LLM_CACHE_WRITE, GEN_AI_CACHE_CREATION_OLD)
COST = (TF_COST, GEN_AI_COST, LLM_COST_TOTAL)
MODEL = (GEN_AI_RESPONSE_MODEL, GEN_AI_REQUEST_MODEL, LLM_MODEL_NAME)

CONSUMED = frozenset(
    INPUT_TOKENS + OUTPUT_TOKENS + CACHE_READ + CACHE_WRITE + COST
    + (LLM_TOTAL_TOKENS, LLM_COST_PROMPT, LLM_COST_COMPLETION, INPUT_VALUE, INPUT_MIME,
       OUTPUT_VALUE, OUTPUT_MIME, TF_RUN_NAME, TF_STATUS, TF_UNPRICED, TF_METADATA, TF_PID,
       TF_HOST, TF_LATENCY)
)
"""Attributes that become a column on ingest, and are written again from it on export.
Every other attribute of an ingested span is kept as it came (step metadata, ``otel``)
and exported unchanged."""

METADATA_KEY = "otel"
"""The step metadata key holding what an ingested span had beyond TraceForge's columns:
``kind``, ``attributes``, ``events``, ``links``, ``scope``, ``service``, ``trace_state``,
``flags``, ``status_code`` and the exact ``start_ns``/``end_ns`` (the schema keeps
float seconds, which round nanoseconds by up to a fraction of a microsecond)."""

RESOURCE_KEY = "otel.resource"
"""The run metadata key holding the resource attributes of an ingested trace."""

_PROVIDERS = (
    ("claude", "anthropic"), ("anthropic/", "anthropic"), ("gpt-", "openai"),
    ("o1", "openai"), ("o3", "openai"), ("o4", "openai"), ("gemini", "gcp.gemini"),
    ("mistral", "mistral_ai"), ("command", "cohere"),
)


def provider_of(model: str) -> str | None:
    """The ``gen_ai.provider.name`` a model id implies, when it is a well-known one."""
    name = model.lower()
    for prefix, provider in _PROVIDERS:
        if name.startswith(prefix):
            return provider
    return None
