"""Serving: prefill and verification for other government systems (issue 5)."""
