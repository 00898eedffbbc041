"""Losses: functions, or modules with their state in buffers."""
