"""Entities: who and what features describe (``user`` by ``user_id``, ``item`` by ``item_id``).

The objects come from :func:`shopflow.features.definitions.build_definitions`, the one
place that defines them, so ``feast apply`` here and Shopflow's Python API agree.
"""

from __future__ import annotations

from shopflow.features.definitions import repo_definitions

user = repo_definitions().user
item = repo_definitions().item
