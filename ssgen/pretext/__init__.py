"""Pretext tasks as pure tensor functions, no state."""
