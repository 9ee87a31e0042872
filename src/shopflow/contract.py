"""Values several parts must agree on, each defined once.

The ledger, the rollback command, the service, the deploy gate and the recommender
library all use these; a second literal copy would drift unnoticed (a ledger row written
as ``"recommenders"`` is a model nobody serves). This module imports nothing, so any
module may import it without a cycle or a cost: the light HTTP schemas as much as the
ledger.
"""

from __future__ import annotations

from typing import Final

#: The purchase-propensity model behind ``POST /predict``: its ledger ``model`` value.
#: The ledger's default model, whose alias keeps the historical name ``production``.
PROPENSITY_MODEL: Final = "propensity"
#: The recommender behind ``POST /recommend``: its ledger ``model`` value (and the name of
#: its section in ``shopflow status --json`` and ``GET /metadata``).
RECOMMENDER_MODEL: Final = "recommender"
#: The models Shopflow trains and serves (the ledger accepts other names, for tools and
#: tests; ``shopflow rollback --model`` offers these).
MODELS: Final = (PROPENSITY_MODEL, RECOMMENDER_MODEL)

#: The model version the recommender answers as when it serves the popular items because
#: no recommender is in production (never a ledger version).
POPULARITY_VERSION: Final = "popularity"

#: A shopper id no store ever holds: the swap checks of the service and the post-deploy
#: gate send it to prove a model answers an unknown shopper (cold start) without failing.
GOLDEN_UNKNOWN_ID: Final = "__shopflow_golden_unknown__"

#: Request header marking a probe (the deploy gate's golden requests and traffic window):
#: the service logs its answers with ``source`` ``probe``, kept out of outcome joins.
PROBE_HEADER: Final = "X-Shopflow-Probe"

#: The largest ``k`` of ``POST /recommend`` (validated by the request schema and again by
#: the recommender itself, for callers in process).
MAX_K: Final = 100
#: Longest id, in characters: the raw gate quarantines a longer user or item id (a whole
#: record pasted into an id column), so no stored shopper has one, and the HTTP API
#: answers a longer one with a 422 naming the field.
MAX_ID_LENGTH: Final = 64
