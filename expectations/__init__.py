"""Shopflow's data-quality suites, written as code so they are reviewed like code.

One module per warehouse layer, each with a ``build_<layer>_suite(...)`` factory that
returns a Great Expectations ``ExpectationSuite``; ``batch`` holds the suite over one-row
batch metrics (drift, duplicates, quarantine rates) that compare a batch with the last
good one; ``checkpoints`` says which tables each layer's gate validates and how its
checkpoint is built.

Every expectation carries a severity in its ``meta`` (``error`` blocks the gate,
``warning`` is reported and passes), mirrored in GX's own ``severity`` field so Data Docs
show it too. Thresholds come from ``settings.quality``; nothing here reads the warehouse.

This folder is loaded by :mod:`shopflow.quality.suites` (it is not an installed package);
the generated ``gx/uncommitted/`` of a file context is never committed.
"""
