"""Logs and metrics: what operators see of the gateway at work."""
