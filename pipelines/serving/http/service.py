"""The prefill service's state: the store it answers from (switched to a new one between
requests), credentials, limits and rate buckets, the audit and refusal logs, the enumeration guard.
The HTTP endpoints over it are in endpoints.py."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pipelines.catalog.model import catalog
from pipelines.serving.access_index import AccessIndex
from pipelines.serving.audit import AUDIT_LOG, audit_secret, subject_hash
from pipelines.serving.audit_writer import AuditWriter
from pipelines.serving.credentials import Credentials
from pipelines.serving.http.auth import Authenticator
from pipelines.serving.http.enumeration import EnumerationGuard
from pipelines.serving.http.limits import limits
from pipelines.serving.http.ratelimit import RateLimiter
from pipelines.serving.http.refusals import REFUSALS_LOG, RefusalLog
from pipelines.serving.store import CURRENT, Store
from pipelines.serving.templates import templates
from pipelines.prereview.queue import QUEUE_FILE, Queue
from pipelines.prereview.rules import rules
from pipelines.serving.lifecycle import lifecycle, lifecycle_view
from pipelines.settings import Settings

log = logging.getLogger(__name__)


class Service:
    def __init__(self, serving_dir: Path, rate: float, share: float = 1.0) -> None:
        self.dir = serving_dir
        self.cat = catalog()
        self.purposes = frozenset(p.code for p in self.cat.purposes)
        self.templates = templates()
        self.prereview_rules = rules()  # a rule that does not compile stops the start
        self.queue = Queue(serving_dir / QUEUE_FILE)
        lists, self.bundles = lifecycle()
        self.lifecycle_json = lifecycle_view(lists, self.bundles, self.templates)
        self.limits = limits()
        self.credentials = Credentials(serving_dir / "credentials.sqlite")
        audit_path = serving_dir / AUDIT_LOG
        self.audit_secret = audit_secret()
        self.audited = AuditWriter(audit_path)  # creates the log (and its index) if new
        self.access = AccessIndex(audit_path)
        self.limiter = RateLimiter(rate)
        self.auth = Authenticator(self.credentials, self.limiter)
        # a batch takes one check per item from a bucket of its own, big enough for a full batch
        self.check_limiter = RateLimiter(self.limits.check_rate * share,
                                         max(self.limits.check_rate, self.limits.max_batch_checks))
        self.refusals = RefusalLog(serving_dir / REFUSALS_LOG)
        self.enumeration = EnumerationGuard(self.limits.enumeration_values,
                                            self.limits.enumeration_window_seconds,
                                            self._enumeration_alert)
        self.link = str(serving_dir / CURRENT)
        self.store_target: str | None = None
        self.next_look = 0.0
        self.warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-warmer")
        self.warming: tuple[str, Future] | None = None
        self.warming_failed = False
        self.store: Store | None = None
        self.remote, self.answering = _exchange(serving_dir.parent, self.cat, self.templates)

    def current_store(self) -> Store:
        """The store `current.lmdb` points to. A new one is opened and warmed (its pages
        mapped: a cold store cost the first seconds of requests twice the time) in a thread
        while the old one keeps serving, then switched between requests (one event loop: no
        request is half-way through the old one when it changes). The link is read at most
        every 50 ms (a readlink per request cost ~5 µs under load)."""
        now = time.monotonic()
        if self.store is not None and now < self.next_look:
            return self.store
        self.next_look = now + 0.05
        target = os.readlink(self.link)
        if target == self.store_target:
            return self.store
        if self.store is None:  # starting: nothing to serve meanwhile
            self._switch(target, _warm_store(self.dir / target))
        elif self.warming is None or self.warming[0] != target:
            if self.warming is not None:  # the link moved on while one was warming: close it
                self.warming[1].add_done_callback(_close_unused)
            self.warming = (target, self.warmer.submit(_warm_store, self.dir / target))
            self.warming_failed = False
        elif self.warming[1].done():
            error = self.warming[1].exception()
            if error is None:
                self._switch(target, self.warming[1].result())
            elif not self.warming_failed:
                # a new store that cannot be opened (a wrong format, a damaged file) is reported
                # once and the old one keeps serving until the link points elsewhere
                log.error("cannot switch to %s, still serving %s: %s", target,
                          self.store_target, error)
                self.warming_failed = True
        return self.store

    def close(self) -> None:
        """Outside the event loop (tests); the service's shutdown awaits `aclose`."""
        self.audited.close()
        self._close_readers()

    async def aclose(self) -> None:
        if self.remote is not None:
            await self.remote.aclose()
        await self.audited.aclose()
        self._close_readers()

    def _close_readers(self) -> None:
        self.queue.close()
        self.auth.close()
        self.refusals.close()
        self.access.close()
        if self.store is not None:
            self.store.close()

    def _switch(self, target: str, store: Store) -> None:
        old, self.store, self.store_target, self.warming = self.store, store, target, None
        if old is not None:
            old.close()

    def _enumeration_alert(self, consumer: str, check: str, case_id: str, subject: str) -> None:
        """Governance staff see who went over the enumeration limit about whom (the subject as
        the audit log names it: its keyed hash, to look up in the access log)."""
        log.warning("enumeration limit: %s asked %s about one subject with too many values "
                    "(case %s)", consumer, check, case_id)
        self.refusals.alert("enumeration", consumer=consumer, check=check, case_id=case_id,
                            subject=subject_hash(subject, self.audit_secret),
                            limit=self.limits.enumeration_values,
                            window_s=self.limits.enumeration_window_seconds)

    def guard(self, consumer: str, case_id: str, items: list) -> list:
        """Each check, or the RequestError to answer it with when it would enumerate a value."""
        return [self.enumeration.refusal(consumer, case_id, item) or item for item in items]


def _exchange(home: Path, cat, templates_):
    """This node on the national exchange, when it has a directory (HUILIU_EXCHANGE_DIRECTORY):
    how it asks other nodes and how it answers them. A node on the exchange without its signing
    key cannot do either: it refuses to start."""
    s = Settings()
    if s.exchange_directory is None:
        return None, None
    from pipelines.exchange import keys
    from pipelines.exchange.answering import Answering
    from pipelines.exchange.relay import DirectoryFile
    from pipelines.exchange.requesting import RemoteNodes

    signer = keys.current(home)  # NoKey names the command that makes one
    me = cat.node.code
    return (RemoteNodes.from_settings(s, me),
            Answering(me, signer, DirectoryFile(s.exchange_directory), templates_, cat))


def _close_unused(warmed: Future) -> None:
    if warmed.exception() is None:
        warmed.result().close()


def _warm_store(path: Path) -> Store:
    store = Store(path)
    store.warm()
    return store
