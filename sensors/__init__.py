"""Dagster sensors: thin wrappers over pure decision functions in the core."""

all_sensors: list[object] = []

__all__ = ["all_sensors"]
