"""Logs (and, later, metrics): what operators see of the gateway at work."""
