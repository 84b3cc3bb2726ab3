"""Reproduce a run from the database alone, and report what drifted.

Replay (the default) rebuilds the plan from the stored config, templates and dataset,
renders every request again and checks it against the stored one, byte for byte in
canonical JSON; the outputs come from the stored results, so no request is sent. Live
mode sends the rebuilt requests again and compares outputs, scores and the models and
fingerprints the providers report. Either way the new run links to its parent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, func, select

from promptlab.cache import fingerprint
from promptlab.canonical import canonical_json
from promptlab.grid import Plan
from promptlab.ids import new_run_id
from promptlab.manifest import collect_manifest
from promptlab.providers import ProviderRequest, get_provider
from promptlab.rebuild import from_database, stored_artifacts
from promptlab.reports.compare import Side, compare
from promptlab.runner import Runner
from promptlab.runner.records import trial_row
from promptlab.servers.managed import managed_servers, resolve_fallbacks
from promptlab.store import Record, Store, utcnow
from promptlab.store.models import Attempt, Result, TrialRow
from promptlab.store.queries import RunInfo, get_run, iter_results

__all__ = ["Drift", "reproduce"]


@dataclass
class Drift:
    parent: str
    run_id: str
    mode: str
    trials: int = 0
    requests_identical: int = 0
    requests_changed: list[int] = field(default_factory=list)
    outputs_identical: int = 0
    outputs_changed: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, list[Any]] = field(default_factory=dict)
    fingerprints: dict[str, list[Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.requests_changed or self.outputs_changed or self.models
                    or self.fingerprints
                    or any(s["changed"] for s in self.scores))


def _canonical(body: str | None) -> str | None:
    if body is None:
        return None
    try:
        return canonical_json(json.loads(body))
    except ValueError:
        return body


def _original(engine: Engine, run_id: str) -> dict[int, dict[str, Any]]:
    """Per trial: key, fingerprint, the last attempt's request body, and the result."""
    last = (select(Attempt.idx, func.max(Attempt.number).label("n"))
            .where(Attempt.run_id == run_id).group_by(Attempt.idx).subquery())
    stmt = (select(TrialRow.idx, TrialRow.key, TrialRow.cache_key, Attempt.request_body,
                   Result.status, Result.output, Result.finish_reason, Result.input_tokens,
                   Result.output_tokens, Result.response_model, Result.fingerprint,
                   Result.cache_source)
            .join(Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx))
            .join(last, last.c.idx == TrialRow.idx, isouter=True)
            .join(Attempt, (Attempt.run_id == TrialRow.run_id) & (Attempt.idx == TrialRow.idx)
                  & (Attempt.number == last.c.n), isouter=True)
            .where(TrialRow.run_id == run_id))
    with engine.connect() as conn:
        return {r.idx: r._asdict() for r in conn.execute(stmt)}


def _warnings(info: RunInfo) -> list[str]:
    now = collect_manifest(__import__("pathlib").Path.cwd())
    then = info.manifest
    out = []
    for name, version in (then.get("packages") or {}).items():
        current = now["packages"].get(name)
        if current != version:
            out.append(f"package {name}: {version} then, {current} now")
    if then.get("python") and then["python"] != now["python"]:
        out.append(f"python: {then['python']} then, {now['python']} now")
    if then.get("git_commit") and now.get("git_commit") != then["git_commit"]:
        out.append(f"git revision: {str(then['git_commit'])[:12]} then, "
                   f"{str(now.get('git_commit') or 'none')[:12]} now")
    return out


def reproduce(engine: Engine, run_id: str, live: bool = False) -> Drift:
    info, prepared = from_database(engine, run_id, check_api_keys=live)
    store = Store(engine)
    original = _original(engine, run_id)
    child = new_run_id()
    drift = Drift(parent=run_id, run_id=child, mode="live" if live else "replay",
                  warnings=_warnings(info))
    plan = Plan(prepared.spec)
    store.create_run(run_id=child, name=info.name, planned=len(plan), config=info.config,
                     overrides=info.overrides,
                     manifest={**collect_manifest(prepared.loaded.root),
                               "choices": prepared.loaded.choices, "reproduces": run_id,
                               "mode": drift.mode},
                     artifacts=stored_artifacts(engine, run_id), parent_run_id=run_id)
    # Rebuild every request and check it against the stored one.
    records: list[Record] = []
    for trial in plan:
        drift.trials += 1
        orig = original.get(trial.index)
        messages = prepared.renderer.render(trial.prompt, trial.row, prepared.spec.dataset.name)
        model = trial.model
        http = get_provider(model.provider).build_request(
            model, ProviderRequest(model.model, messages, trial.params), "x")
        if orig is None or orig["key"] != trial.key:
            same = False
        elif orig["request_body"] is not None:
            same = _canonical(orig["request_body"]) == _canonical(http.body.decode())
        else:  # a cache hit sent nothing: its fingerprint is the request's identity
            same = orig["cache_key"] == fingerprint(model, messages, trial.params, trial.repeat)
        if same:
            drift.requests_identical += 1
        else:
            drift.requests_changed.append(trial.index)
        if not live and orig is not None:
            records.append(_replayed(child, run_id, trial.index, orig, trial, messages))
    status = "failed"
    try:
        if live:
            spec = resolve_fallbacks(prepared.spec, lambda _: None)
            with managed_servers(spec, {}) as live_spec:
                run_spec = replace(live_spec, run=replace(live_spec.run, cache="off",
                                                          progress=False))
                asyncio.run(Runner(replace(prepared, spec=run_spec), store, child).run())
        else:
            for i in range(0, len(records), 1000):
                store.write(records[i:i + 1000])
        status = "completed"
    finally:
        store.finish_run(child, status)
    if prepared.scorers:
        from promptlab.scoring import score_run

        score_run(engine, child, prepared, prepared.scorers)
    _compare_outcomes(engine, drift, original)
    return drift


def _replayed(child: str, parent: str, idx: int, orig: dict[str, Any], trial: Any,
              messages: list[dict[str, str]]) -> Record:
    row = trial_row(child, trial, params_json=json.dumps(trial.params, sort_keys=True),
                    row_json=json.dumps(trial.row.data, sort_keys=True),
                    messages_json=json.dumps(messages),
                    cache_key=fingerprint(trial.model, messages, trial.params, trial.repeat))
    ok = orig["status"] == "ok"
    result = {
        "run_id": child, "idx": idx, "status": "ok" if ok else "skipped",
        "output": orig["output"], "finish_reason": orig["finish_reason"],
        "input_tokens": orig["input_tokens"], "output_tokens": orig["output_tokens"],
        "latency_ms": None, "ttft_ms": None, "tokens_per_s": None, "cost_usd": 0.0,
        "attempts": 0, "response_model": orig["response_model"],
        "fingerprint": orig["fingerprint"], "error_kind": None if ok else "replay",
        "error": None if ok else f"not replayed: the original trial ended {orig['status']}",
        "cache_hit": ok, "cacheable": False, "cache_source": f"{parent}:{idx}",
        "finished_at": utcnow(),
    }
    return Record(row, result, [])


def _compare_outcomes(engine: Engine, drift: Drift, original: dict[int, dict[str, Any]]) -> None:
    new = {r.idx: r for r in iter_results(engine, drift.run_id)}
    old = {r.idx: r for r in iter_results(engine, drift.parent)}
    new_meta = _original(engine, drift.run_id)
    for idx, r in sorted(new.items()):
        o = old.get(idx)
        if o is None or r.status != "ok" or o.status != "ok":
            continue
        if r.output == o.output:
            drift.outputs_identical += 1
        else:
            drift.outputs_changed.append({"idx": idx, "row_id": r.row_id, "model": r.model_alias,
                                          "prompt": r.prompt, "before": o.output,
                                          "after": r.output})
    for field_name, target in (("response_model", drift.models),
                               ("fingerprint", drift.fingerprints)):
        before = {original[i][field_name] for i in new_meta if i in original} - {None}
        after = {new_meta[i][field_name] for i in new_meta} - {None}
        if drift.mode == "live" and before != after:
            target["before"], target["after"] = sorted(before), sorted(after)
    scorers = sorted({s for r in old.values() for s in r.scores}
                     & {s for r in new.values() for s in r.scores})
    a = Side("reproduction", {(i,): r for i, r in new.items()})
    b = Side("original", {(i,): r for i, r in old.items()})
    for s in scorers:
        c = compare(a, b, s)
        drift.scores.append({"scorer": s, "before": c.b_value, "after": c.a_value,
                             "diff": c.diff, "lo": c.diff_lo, "hi": c.diff_hi,
                             "changed": c.wins + c.losses > 0, "p_value": c.p_value})


def parent_of(engine: Engine, run_id: str) -> str | None:
    return get_run(engine, run_id).manifest.get("reproduces")
