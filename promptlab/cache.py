"""Request fingerprints: the cache key, and the fields it is made of.

A fingerprint is the sha256 of the canonical JSON of what can change an answer: provider,
endpoint identity (a managed server's, not its random port), model, rendered messages,
params and the repeat index (so repeats are distinct samples). Concurrency, timeouts,
retries and budgets are left out. The database is the cache: a hit is a stored fresh ok
result with the same fingerprint.

The endpoint also names, when set, what else shapes the request or how its answer is
read (`wire`): an API other than chat (`completions`, `responses`), a generic HTTP API's
config (its body template, path, response paths) and the headers that are not secret.
Without them a completions model was served a chat model's answers (migration 0011 takes
such answers out of the cache). No secret goes in. A plain chat model's fingerprint is
what it always was, so the answers stored before still serve it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from promptlab.canonical import canonical_json, hash_value, sha256_hex
from promptlab.redaction import ALWAYS_SECRET_HEADERS, redact_url
from promptlab.spec import ModelSpec

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["FINGERPRINT_FIELDS", "estimate_tokens", "explain", "fingerprint", "fingerprint_fields",
           "fingerprint_from_parts", "fingerprints_of"]

FINGERPRINT_FIELDS = ("provider", "endpoint", "model", "messages", "params", "repeat")


def wire(model: ModelSpec) -> dict[str, Any]:
    """What shapes a model's requests beyond its base URL, where set (see above); no
    secret (a key in a header or in the http path's query) goes in: a new key is the same
    request."""
    out: dict[str, Any] = {}
    if model.endpoint != "chat":
        out["api"] = model.endpoint
    if model.http:
        http = dict(model.http)
        if http.get("path"):
            http["path"] = redact_url(str(http["path"]), model.secret_params)
        out["http"] = http
    secret = {h.lower() for h in model.secret_headers} | ALWAYS_SECRET_HEADERS
    headers = [[k.lower(), v] for k, v in model.headers if k.lower() not in secret]
    if headers:
        out["headers"] = sorted(headers)
    return out


def _endpoint(model: ModelSpec) -> str:
    """The fingerprint's endpoint: the identity, and the wire when there is one."""
    shape = wire(model)
    identity = model.endpoint_identity()
    return f"{identity} {canonical_json(shape)}" if shape else identity


def fingerprint_fields(model: ModelSpec, messages: list[dict[str, str]], params: dict[str, Any],
                       repeat: int) -> dict[str, Any]:
    return {"provider": model.provider, "endpoint": _endpoint(model),
            "model": model.model, "messages": messages, "params": params, "repeat": repeat}


def fingerprint(model: ModelSpec, messages: list[dict[str, str]], params: dict[str, Any],
                repeat: int) -> str:
    return hash_value(fingerprint_fields(model, messages, params, repeat))


def fingerprint_from_parts(model: ModelSpec, messages_canonical: str, params_canonical: str,
                           repeat: int) -> str:
    """`fingerprint`, from canonical JSON already made (the hot path); equal by contract."""
    head, middle, tail = _parts(model)
    return sha256_hex(f"{head}{messages_canonical}{middle}{params_canonical}{tail}{repeat}}}")


def fingerprints_of(model: ModelSpec, messages_canonical: str) -> Callable[[str, int], str]:
    """`fingerprint_from_parts` of one model and one prompt's messages, by (canonical params,
    repeat): the messages are hashed once, for every grid point and repeat (`plan`'s
    estimate of a large grid)."""
    head, middle, tail = _parts(model)
    base = hashlib.sha256(f"{head}{messages_canonical}{middle}".encode())

    def fingerprint(params_canonical: str, repeat: int) -> str:
        h = base.copy()
        h.update(f"{params_canonical}{tail}{repeat}}}".encode())
        return h.hexdigest()

    return fingerprint


def _parts(model: ModelSpec) -> tuple[str, str, str]:
    """The model's parts of the fingerprint's JSON: before the messages, between them and
    the params, and between the params and the repeat."""
    known = _MODEL_PARTS.get(id(model))
    if known is None or known[0] is not model:
        if len(_MODEL_PARTS) >= 256:  # every run makes its models anew: a long-lived process
            _MODEL_PARTS.clear()  # (`serve`, a sweep, a search) would keep them all
        known = _MODEL_PARTS[id(model)] = (model, (
            f'{{"endpoint":{canonical_json(_endpoint(model))},"messages":',
            f',"model":{canonical_json(model.model)},"params":',
            f',"provider":{canonical_json(model.provider)},"repeat":'))
    return known[1]


# Each model's parts of the JSON, by the model's id: hashing a ModelSpec (a dataclass of
# some twenty fields) for every trial was a seventh of `plan`'s estimate of 1,000,000. The
# model is kept with its parts, so its id is not another's while the entry lives.
_MODEL_PARTS: dict[int, tuple[ModelSpec, tuple[str, str, str]]] = {}


def estimate_tokens(messages: list[dict[str, str]], params: dict[str, Any]) -> int:
    """A rough budget estimate: ~4 characters a token in, max_tokens (or 256) out."""
    chars = sum(len(m["content"]) for m in messages)
    out = params.get("max_tokens") or params.get("max_completion_tokens") or 256
    return chars // 4 + 4 * len(messages) + int(out)


def _short(value: Any, width: int = 90) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def explain(store: Store, run_id: str, ref: str) -> list[str]:
    """Why a trial was or was not served from the cache, as lines to print."""
    trial = store.trial_detail(run_id, ref)
    head = (f"trial {trial['idx']} of run {run_id} (model {trial['model_alias']}, prompt "
            f"{trial['prompt']}, row {trial['row_id']}), fingerprint {trial['cache_key'][:16]}")
    if trial["cache_hit"]:
        return [head, f"cache hit: served from {trial['cache_source']}"]
    # Only what was stored when this trial looked: later trials (of its own run, too)
    # could not have served it, and naming them would name the wrong cause.
    candidates = store.cache_candidates(trial)
    same = [c for c in candidates if c["cache_key"] == trial["cache_key"]]
    lines = [head, "cache miss:"]
    earlier = [c for c in same if c["status"] == "ok" and c["cacheable"]]
    if earlier:
        src = earlier[0]
        source = f"{src['run_id']}:{src['idx']}"
        ended = store.run(src["run_id"]).finished_at
        if store.run(run_id).config.get("run", {}).get("cache") == "off":
            why = "before this trial finished, but this run used run.cache=off"
        elif src["run_id"] == run_id:  # a run's answers enter the index at its end
            why = ("earlier in this same run: a run's answers serve other runs once it ends, "
                   "not its own later trials")
        elif ended is None or (trial["finished_at"] is not None
                               and ended >= trial["finished_at"]):
            why = ("before this trial finished, but its run had not ended: a run's answers "
                   "serve others once it ends")
        else:
            why = ("before this trial finished, while it was on its way: after it looked the "
                   "cache up")
        lines.append(f"  an identical request ({source}) was stored {why}")
        return lines
    if same:
        c = same[0]
        why = ("it failed (errors are never cached)" if c["status"] != "ok"
               else "it was recorded with run.cache=read or off, or was itself a cache hit")
        lines.append(f"  identical request {c['run_id']}:{c['idx']} exists, but {why}")
        return lines
    if not candidates:
        lines.append(f"  no trial for dataset row '{trial['row_id']}' was stored before this "
                     "one: nothing to reuse")
        return lines

    def diff(c: dict[str, Any]) -> list[str]:
        return [f for f in FINGERPRINT_FIELDS if c["fields"][f] != trial["fields"][f]]

    def distance(c: dict[str, Any]) -> tuple[int, int]:
        # Fewest differing fields first, then fewest differing params and messages, so a
        # request that differs in max_tokens alone beats one that also differs in temperature.
        fields = diff(c)
        inner = sum(_inner_differences(c["fields"][f], trial["fields"][f]) for f in fields)
        return len(fields), inner

    nearest = min(candidates, key=distance)
    lines.append(f"  nearest stored request: {nearest['run_id']}:{nearest['idx']} "
                 f"({nearest['status']}); fields that differ:")
    for f in diff(nearest):
        lines.append(f"    {f}: here {_short(trial['fields'][f])}")
        lines.append(f"    {' ' * len(f)}  there {_short(nearest['fields'][f])}")
    if not diff(nearest):  # the wire is in the fingerprint, not in the trial's row
        lines.append("    none stored per trial: the model's API, http config or headers")
    return lines


def _inner_differences(a: Any, b: Any) -> int:
    """How many keys (of a dict) or items (of a list) differ; 1 for other values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return sum(1 for k in set(a) | set(b) if a.get(k) != b.get(k))
    if isinstance(a, list) and isinstance(b, list):
        return sum(1 for x, y in zip(a, b, strict=False) if x != y) + abs(len(a) - len(b))
    return 1 if a != b else 0
