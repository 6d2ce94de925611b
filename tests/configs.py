"""Automation configs that tests PUT, in Ops Manager's shape."""

from opsmgr.automation.templates import replica_set_config

__all__ = ["replica_set_config"]
