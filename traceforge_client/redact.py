"""Redaction: secrets are taken out of traced events before they leave the process.

Traced inputs, outputs and metadata often hold credentials by accident: an API key in a
client's config, an ``Authorization`` header in logged request metadata, a password in a
connection string inside an error message. TraceForge keeps traces for a long time and
shows them in a browser, so the client replaces them with a marker naming the kind of
secret, ``[redacted:anthropic_api_key]``, before the events are encoded.

This runs on the sender thread (``batching.py``), never on the traced code's thread: a
traced step costs the same with it on or off. A batch's text fields are first searched
as one string, so a batch with no secret costs one regex search per pattern; only the
fields of a batch that matched are then redacted one by one. JSON fields (input, output,
metadata) are decoded and redacted inside their string values and encoded again, so
they stay valid JSON whatever a pattern matches. Error messages, tracebacks and a run's
error are plain text.

Two kinds of rules:

- ``PATTERNS``, one table: name -> compiled regex, applied in order to every string. When
  the regex has a group named ``secret`` (or ``secret2``...) that took part, only that
  group is replaced (``Bearer <token>``
  keeps ``Bearer``), else the whole match. What a pattern finds is looked for first in the
  JSON text as sent, where quotes, backslashes and newlines are escaped, then applied to
  the decoded strings.
- ``SECRET_KEY``: in a JSON object, the string value under a key named like a secret
  (``api_key``, ``password``, ``client_secret``, ``access_token``, ``Authorization``, ...)
  is replaced whole, as ``[redacted:secret_field]``, unless a pattern already named it.

On by default; ``init(redact=False)`` or ``TRACEFORGE_REDACT=0`` turns it off, and
``init(redact_patterns={"name": r"regex"})`` adds patterns (``None`` removes a built-in
one, by name; ``"secret_field"`` is the key rule).
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Mapping, Optional, Union

import msgspec

from traceforge_protocol import wire

logger = logging.getLogger("traceforge")

MARKER = "[redacted:{}]"
MARKER_PREFIX = "[redacted:"
KEY_RULE = "secret_field"
"""The name of the key rule, in its marker and in ``redact_patterns`` (to remove it)."""

_TOKEN = r"[A-Za-z0-9_-]"
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "secret_access_key",
                 "secret_key", "api_key", "api-key", "apikey", "access_token", "auth_token",
                 "authorization")
"""Words that, followed by ``:`` or ``=``, name a secret in plain text (``secret_assignment``)."""


def _after(literal: str, rest: str) -> str:
    """``literal`` not preceded by a letter or digit, then ``rest``. Written as the literal
    then a look-behind, not ``\\b`` first, so the regex starts with a literal and
    ``re`` scans for it as fast as ``str.find`` (a leading ``\\b`` is 30 times slower)."""
    escaped = re.escape(literal)
    return rf"{escaped}(?<![A-Za-z0-9]{escaped}){rest}"


BUILT_IN: dict[str, str] = {
    # Known shapes first, most specific first: a later rule never redacts a marker again.
    "private_key": r"-----BEGIN[A-Z ]{0,30} PRIVATE KEY( BLOCK)?-----[\s\S]*?"
                   r"-----END[A-Z ]{0,30} PRIVATE KEY( BLOCK)?-----",
    "anthropic_api_key": _after("sk-ant-", rf"{_TOKEN}{{20,}}"),
    "openai_api_key": _after("sk-", rf"(?:proj-|svcacct-|admin-)?{_TOKEN}{{20,}}"),
    # A 40-character secret access key right after its access key id: only the secret is
    # replaced here, the id by the next rule. After its name, secret_assignment takes it.
    "aws_secret_access_key": r"A(?:KIA|SIA)(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}"
                             r"[^A-Za-z0-9/+]{1,8}(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
    "aws_access_key_id": r"A(?:KIA|SIA)(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}\b",
    "github_token": r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})\b",
    "slack_token": _after("xox", r"[abposr]-[A-Za-z0-9-]{10,}"),
    "google_api_key": _after("AIza", rf"{_TOKEN}{{35}}"),
    "huggingface_token": _after("hf_", r"[A-Za-z0-9]{34,}\b"),
    "jwt": _after("eyJ", rf"{_TOKEN}{{8,}}\.eyJ{_TOKEN}{{8,}}\.{_TOKEN}{{8,}}"),
    # Then secrets known by what stands before them.
    "bearer_token": r"(?i:bearer\s+)(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)",
    "url_password": r"://[^\s/:@\"]{1,100}:(?P<secret>[^\s/@\"]{1,200})@",
    "secret_assignment": r"(?i:(?:" + "|".join(re.escape(w) for w in _SECRET_WORDS)
                         + r")[\"']?\s*[:=]\s*[\"']?(?:(?:basic|bearer|token)\s+)?)"
                         r"(?P<secret>[^\s\"',;&]{3,})",
}
"""The built-in patterns, in the order they are applied."""

ANCHORS: dict[str, tuple[str, ...]] = {
    "bearer_token": ("bearer",),
    "secret_assignment": ("passw", "passphrase", "secret", "api_key", "api-key", "apikey",
                          "access_token", "auth_token", "authorization"),
}
"""For the built-in patterns that do not start with a literal (``re`` searches those 30
times slower than the others): lowercase strings one of which every match contains. They
are looked for first, in the lowercased text, as ``str.find`` does."""

SECRET_KEY = re.compile(
    r"(?:.*(?:api[_-]?key|secret[_-]?(?:access[_-]?)?key|private[_-]?key|password|passwd|"
    r"passphrase|secret|authorization|(?:access|refresh|id|auth|api|session|bearer|oauth|"
    r"csrf|xsrf)[_-]?token)|token|pwd|x-api-key)",
    re.IGNORECASE,
)
"""A JSON key whose string value is a secret, matched against the whole key. A bare
``token`` counts, ``eos_token`` or ``max_tokens`` do not."""

KEY_ANCHORS = ('key"', "passw", "passphrase", "secret", "authorization", 'token"', 'pwd"')
"""Every key SECRET_KEY names holds one of these, as JSON text (lowercased) shows it."""

_SEPARATOR = "\n\x00\n"
"""Between fields when a batch is searched as one string."""

Patterns = Mapping[str, Union[str, "re.Pattern[str]", None]]


_COMPILED = {name: re.compile(regex) for name, regex in BUILT_IN.items()}
PATTERNS: Mapping[str, "re.Pattern[str]"] = {**_COMPILED, KEY_RULE: SECRET_KEY}
"""The default table: every built-in pattern, compiled, and the key rule."""


def compile_patterns(extra: Optional[Patterns] = None) -> dict:
    """The default table plus ``extra`` (name -> regex, or None to remove one), compiled.
    A bad regex or name raises ValueError saying which."""
    table: dict = dict(PATTERNS)
    for name, regex in (extra or {}).items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", name):
            raise ValueError(f"redact_patterns: name {name!r} must be 1 to 64 characters "
                             "of a-z, 0-9 and _ (it is shown in the marker)")
        if regex is None:
            table.pop(name, None)
            continue
        if isinstance(regex, re.Pattern):
            table[name] = regex
            continue
        if not isinstance(regex, str):
            raise ValueError(f"redact_patterns[{name!r}]: give a regex as a string, got "
                             f"{type(regex).__name__}")
        try:
            table[name] = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"redact_patterns[{name!r}]: {regex!r} is not a valid "
                             f"regular expression: {exc}") from None
        if table[name].search(""):
            raise ValueError(f"redact_patterns[{name!r}]: {regex!r} matches the empty "
                             "string; it would mark every text")
    return table


class _Rule:
    """One pattern as the Redactor applies it."""

    __slots__ = ("name", "regex", "marker", "anchors")

    def __init__(self, name: str, regex: "re.Pattern[str]",
                 anchors: Optional[tuple] = None) -> None:
        self.name = name
        self.regex = regex
        self.marker = MARKER.format(name)
        self.anchors = anchors
        """Lowercase strings one of which every match contains; None: search the regex."""


class Redactor:
    """Replaces secrets in events' text fields, in place; used by the sender thread."""

    def __init__(self, table: Mapping[str, "re.Pattern[str]"]) -> None:
        self.key_rule = table.get(KEY_RULE)
        self.rules = tuple(
            _Rule(name, regex, ANCHORS.get(name) if regex is _COMPILED.get(name) else None)
            for name, regex in table.items() if name != KEY_RULE)
        self._key_rule = None
        if self.key_rule is not None:  # a replaced key rule is searched for as it is
            anchors = KEY_ANCHORS if self.key_rule is SECRET_KEY else None
            self._key_rule = _Rule(KEY_RULE, self.key_rule, anchors)

    # ---- events ----

    def batch(self, events: list, count_drop: Callable[[str, int], None]) -> list:
        """``events`` with secrets taken out. If redacting fails (a bug), the events it
        fails on are dropped and counted as ``redact_error``: sent as they are, they could
        carry a secret."""
        try:
            self.events(events)
            return events
        except Exception:
            logger.debug("traceforge: redaction failed", exc_info=True)
        kept = []
        for event in events:
            try:
                self.events([event])
            except Exception:
                count_drop("redact_error", 1)
            else:
                kept.append(event)
        return kept

    def events(self, events: list) -> None:
        """Redact every event of a batch, in place."""
        texts: list = []
        add = texts.append
        for event in events:  # the fields' values only: this loop runs for every event
            kind = type(event)
            if kind is _StepEnd:
                add(event.output_json)
                add(event.metadata_json)
                add(event.error_message)
                add(event.traceback)
            elif kind is _StepStart:
                add(event.input_json)
                add(event.metadata_json)
            else:
                add(event.metadata_json)
                if kind is _RunEnd:
                    add(event.error)
        joined = _SEPARATOR.join(filter(None, texts))
        rules, key_rule = self._candidates(joined, self.rules, self._key_rule)
        if not rules and key_rule is None:
            return  # the common case: nothing that looks like a secret in the whole batch
        for event in events:
            for name in _FIELDS[type(event)]:
                value = getattr(event, name)
                if not value:
                    continue
                is_json = name.endswith("_json")
                found, key = self._candidates(value, rules, key_rule if is_json else None)
                if not found and key is None:
                    continue
                redacted = self._json(value, found, key) if is_json else _apply(value, found)
                if redacted is not value:
                    setattr(event, name, redacted)

    @staticmethod
    def _candidates(text: str, rules: tuple, key_rule: Optional[_Rule]) -> tuple:
        """The rules that may match ``text`` (and the key rule, or None). Each anchor is
        looked for once, however many rules share it."""
        lowered = text.lower()
        known: dict = {}

        def may_match(rule: _Rule) -> bool:
            if rule.anchors is None:
                return rule.regex.search(text) is not None
            for anchor in rule.anchors:
                found = known.get(anchor)
                if found is None:
                    found = known[anchor] = anchor in lowered
                if found:
                    return True
            return False

        found = tuple(rule for rule in rules if may_match(rule))
        if key_rule is not None and not may_match(key_rule):
            key_rule = None
        return found, key_rule

    # ---- one field ----

    def text(self, value: str) -> str:
        """Plain text with every pattern's matches replaced; the same object if none."""
        return _apply(value, self._candidates(value, self.rules, None)[0])

    def json(self, text: str) -> str:
        """JSON text redacted inside its string values: still valid JSON."""
        rules, key_rule = self._candidates(text, self.rules, self._key_rule)
        if not rules and key_rule is None:
            return text
        return self._json(text, rules, key_rule)

    def _json(self, text: str, rules: tuple, key_rule: Optional[_Rule]) -> str:
        try:
            value = _json_decode(text)
        except (msgspec.DecodeError, UnicodeError):
            return _apply(text, rules)  # not JSON after all (e.g. a number out of range)
        redacted = _walk(value, rules, key_rule.regex if key_rule is not None else None)
        return msgspec.json.encode(redacted).decode() if redacted is not value else text


_StepStart, _StepEnd, _RunEnd = wire.StepStart, wire.StepEnd, wire.RunEnd
_FIELDS = {
    wire.StepStart: ("input_json", "metadata_json"),
    wire.StepEnd: ("output_json", "metadata_json", "error_message", "traceback"),
    wire.RunStart: ("metadata_json",),
    wire.RunEnd: ("error", "metadata_json"),
}
"""The text fields of each event that are redacted: JSON ones end in ``_json``."""


def _apply(value: str, rules: tuple) -> str:
    """``value`` with the matches of ``rules`` replaced; the same object if none. A rule
    with anchors is searched for only when one is in ``value``."""
    lowered = None
    for rule in rules:
        if rule.anchors is not None:
            if lowered is None:
                lowered = value.lower()
            if not any(anchor in lowered for anchor in rule.anchors):
                continue
        if rule.regex.search(value) is not None:
            marker = rule.marker
            value = rule.regex.sub(lambda match: _replace(match, marker), value)
            lowered = None
    return value


def _walk(value, rules: tuple, key_rule: Optional["re.Pattern[str]"]):
    """A decoded JSON value with secrets replaced; the same object when nothing changed."""
    kind = type(value)
    if kind is str:
        return _apply(value, rules)
    if kind is list:
        items = [_walk(item, rules, key_rule) for item in value]
        changed = any(new is not old for new, old in zip(items, value))
        return items if changed else value
    if kind is not dict:
        return value
    out, changed = {}, False
    for key, item in value.items():
        new = _walk(item, rules, key_rule)
        if (type(new) is str and new and key_rule is not None
                and key_rule.fullmatch(key) is not None and not _is_marker(new)):
            new = MARKER.format(KEY_RULE)
        out[key] = new
        changed = changed or new is not item
    return out if changed else value


def _replace(match: "re.Match[str]", marker: str) -> str:
    """The match with its group named ``secret...`` that took part (else all of it)
    replaced by ``marker``, unless that is a marker already."""
    group: Union[int, str] = 0
    for name in match.re.groupindex:
        if name.startswith("secret") and match.start(name) >= 0:
            group = name
            break
    secret = match.group(group)
    if secret.startswith(MARKER_PREFIX):
        return match.group(0)
    start, end = match.start(group) - match.start(), match.end(group) - match.start()
    whole = match.group(0)
    return whole[:start] + marker + whole[end:]


def _is_marker(text: str) -> bool:
    return text.startswith(MARKER_PREFIX) and text.endswith("]") and "[" not in text[1:]


_json_decode = msgspec.json.Decoder().decode


def redactor(extra: Optional[Patterns] = None) -> Redactor:
    """A Redactor for the default table plus ``extra``; ValueError names a bad pattern."""
    return Redactor(compile_patterns(extra))
