"""Shopflow: raw shop events to served purchase-propensity and recommendation models."""

from __future__ import annotations

__version__ = "0.1.0"
