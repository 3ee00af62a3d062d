"""Fingerprinting units (PUF): challenges, responses, enrollment store, identify/verify, metrics."""
