"""cache_entries: drop the answers a model with another wire filed under a chat model's
fingerprint

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26

Until now a fingerprint named the endpoint by its base URL alone: a completions model (or
a responses one, a generic HTTP API, a model sending its own headers) and a chat model
of the same name on the same server made one fingerprint for one prompt, and each was
served the other's answers. Fingerprints now name that wire (`promptlab/cache.py`); a
plain chat model's are what they were, so its stored answers still serve it. What the
other models stored sits in the index under those old shared fingerprints: it is dropped
here: their results stay, no longer sources of the cache (`cacheable` false). No schema
changes.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# As they stand at this revision (a later change must not change what it does):
# promptlab.redaction.ALWAYS_SECRET_HEADERS and the trials' model_alias width.
_ALWAYS_SECRET = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization",
                            "x-goog-api-key"})
_ALIAS_WIDTH = 200


def _has_wire(model: Any) -> bool:
    """Whether a stored model config sent more than a chat request to its base URL."""
    if not isinstance(model, dict):
        return False
    secret = {str(h).lower() for h in model.get("secret_headers") or []} | _ALWAYS_SECRET
    headers = model.get("headers") or {}
    return (model.get("endpoint") not in (None, "chat") or bool(model.get("http"))
            or any(str(k).lower() not in secret for k in headers))


def upgrade() -> None:
    from promptlab.store.fitting import fit_text

    conn = op.get_bind()
    # Their results stop being sources: the triggers drop their entries (by fingerprint,
    # the index's own order), and neither the fill at a run's end (a resume of it) nor
    # the settling of a run whose process died puts them back.
    stop = sa.text("UPDATE results SET cacheable = :no WHERE run_id = :run_id AND cacheable "
                   "AND idx IN (SELECT idx FROM trials WHERE run_id = :run_id "
                   "AND model_alias = :alias)")
    for run_id, config_json in conn.execute(sa.text("SELECT id, config_json FROM runs")).all():
        try:
            models = json.loads(config_json or "{}").get("models") or {}
        except (ValueError, AttributeError):
            continue
        if not isinstance(models, dict):
            continue
        for alias, model in models.items():
            if _has_wire(model):
                conn.execute(stop, {"no": False, "run_id": run_id,
                                    "alias": fit_text(str(alias), _ALIAS_WIDTH, identity=True)})


def downgrade() -> None:
    pass  # those results served the wrong requests
