"""The prefill service's limits, from the environment (prefix HUILIU_SERVE_, then `.env`).

Each bounds what one caller can make the service hold or wait for; `.env.example` lists them with
the reasons for their defaults. The HTTP ones are enforced by `protocol.LimitedHttpTools` (what
`huiliu serve` runs), the others by the app."""

from __future__ import annotations

import functools

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUILIU_SERVE_", env_file=".env", extra="ignore")

    max_connections: int = 1000
    """Open connections per worker process; more are closed at once (file descriptors, memory)."""
    max_header_bytes: int = 16 * 1024
    """Request line and headers together (h11's and nginx's order of size); more: 431."""
    header_timeout_seconds: float = 10.0
    """To send a request's line and headers, from the connection (or its first byte after a
    previous answer); a connection that sent nothing by then is closed, a partial head gets 408."""
    body_timeout_seconds: float = 30.0
    """To send a whole body once the headers are in; then 408 (the body is not waited for)."""
    keep_alive_seconds: int = 5
    """An idle connection between requests is closed after this (uvicorn's timeout_keep_alive)."""
    max_body_bytes: int = 128 * 1024
    """Body of /v1/prefill and /v1/verify; more: 413. A prefill is under 1 KiB: this is room for
    any honest one (and for a bad field to be refused by name) while max_connections bodies
    together stay within 128 MiB."""
    max_batch_body_bytes: int = 2 * 1024 * 1024
    """Body of /v1/batch: room for max_batch_checks checks of ~100 bytes each, twice over."""
    max_batch_checks: int = 10_000
    """Checks in one /v1/batch call (ten chunks of the audit's 1,000); more: 413."""
    check_rate: float = 2000.0
    """Batch checks a second per consumer (its own bucket; one batch call also takes one request
    of HUILIU_API_RATE). A full batch may wait up to max_batch_checks / check_rate seconds."""
    enumeration_values: int = 5
    """Distinct candidate values (married_to's `other`, hukou_in's `division`) one consumer may ask
    about one subject within enumeration_window_seconds; further ones are refused and flagged."""
    enumeration_window_seconds: float = 24 * 3600.0


@functools.cache
def limits() -> ServiceLimits:
    """The limits of this process (read once)."""
    return ServiceLimits()
