"""Reproduce a run from the database alone, and report what drifted.

Replay (the default) rebuilds the plan from the stored config, templates and dataset,
renders every request again and checks it against the stored one, byte for byte in
canonical JSON; the outputs come from the stored results, so no request is sent. Live
mode sends the rebuilt requests again and compares outputs, scores and the models and
fingerprints the providers report. Either way the new run links to its parent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptlab.cache import fingerprint
from promptlab.canonical import canonical_json, sha256_hex
from promptlab.experiment.rebuild import from_database
from promptlab.grid import Plan
from promptlab.ids import new_run_id
from promptlab.images import unpack
from promptlab.manifest import collect_manifest
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.tools import fingerprint_params, request_options
from promptlab.reports.compare import Side, compare
from promptlab.runner.records import trial_row
from promptlab.runner.session import NewRun, Session
from promptlab.scoring import score_run
from promptlab.store import Record, RunInfo, Store, utcnow

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


def _warnings(info: RunInfo) -> list[str]:
    now = collect_manifest(Path.cwd())
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


def reproduce(store: Store, run_id: str, live: bool = False) -> Drift:
    """Rebuild run `run_id` from the database as a new child run; report what drifted."""
    info, prepared = from_database(store, run_id, check_api_keys=live)
    original = store.trials_with_last_request(run_id)
    child = new_run_id()
    drift = Drift(parent=run_id, run_id=child, mode="live" if live else "replay",
                  warnings=_warnings(info))
    plan = Plan(prepared.spec)
    spec = prepared.spec
    if live:
        spec = replace(spec, run=replace(spec.run, cache="off", progress=False))
    session = Session(store, spec, prepared.renderer)
    session.start(NewRun(config=info.config, overrides=info.overrides,
                         manifest={**collect_manifest(prepared.loaded.root),
                                   "choices": prepared.loaded.choices, "reproduces": run_id,
                                   "mode": drift.mode},
                         artifacts=store.artifacts(run_id), parent_run_id=run_id), child)
    # Rebuild every request and check it against the stored one (images re-inflated).
    images = {sha256_hex(url): url for name, url in store.artifacts(run_id).items()
              if name.startswith("image:")}
    records: list[Record] = []
    for trial in plan:
        drift.trials += 1
        orig = original.get(trial.index)
        messages = prepared.renderer.render(trial.prompt, trial.row, prepared.spec.dataset.name)
        model = trial.model
        options = request_options(model, trial.prompt)
        http = get_provider(model.provider).build_request(
            model, ProviderRequest(model.model, messages, trial.params, **options), "x")
        hashed = fingerprint_params(trial.params, options)
        if orig is None or orig["key"] != trial.key:
            same = False
        elif orig["request_body"] is not None:
            same = (_canonical(unpack(orig["request_body"], images))
                    == _canonical(http.body.decode()))
        else:  # a cache hit sent nothing: its fingerprint is the request's identity
            same = orig["cache_key"] == fingerprint(model, messages, hashed, trial.repeat)
        if same:
            drift.requests_identical += 1
        else:
            drift.requests_changed.append(trial.index)
        if not live and orig is not None:
            records.append(_replayed(child, run_id, trial.index, orig, trial, messages))
    if live:
        session.execute(child)
    else:
        try:
            for i in range(0, len(records), 1000):
                store.write(records[i:i + 1000])
        except BaseException:
            store.finish_run(child, "failed")
            raise
        store.finish_run(child, "completed")
    if prepared.scorers:
        score_run(store, child, prepared.scorers, prepared.spec, prepared.renderer)
    _compare_outcomes(store, drift, original)
    return drift


def _replayed(child: str, parent: str, idx: int, orig: dict[str, Any], trial: Any,
              messages: list[dict[str, str]]) -> Record:
    row = trial_row(child, trial, params_json=json.dumps(trial.params, sort_keys=True),
                    row_json=json.dumps(trial.row.data, sort_keys=True),
                    messages_json=json.dumps(messages),
                    cache_key=fingerprint(trial.model, messages, fingerprint_params(
                        trial.params, request_options(trial.model, trial.prompt)), trial.repeat))
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


def _compare_outcomes(store: Store, drift: Drift, original: dict[int, dict[str, Any]]) -> None:
    new = {r.idx: r for r in store.results(drift.run_id)}
    old = {r.idx: r for r in store.results(drift.parent)}
    new_meta = store.trials_with_last_request(drift.run_id)
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
