"""Airflow loads plugins from this folder: the Shopflow view (``shopflow.ui.plugin``)."""

from shopflow.ui.plugin import ShopflowPlugin

__all__ = ["ShopflowPlugin"]
