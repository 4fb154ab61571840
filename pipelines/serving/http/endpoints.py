"""The prefill service's endpoints, as methods over its state (service.py); app.py routes to them.

Every answer is written to the audit log before it is sent, and every refusal counted: by
`JsonEndpoint` for the hot paths (prefill, verify), by `HotPaths` from what `_refuse` puts in the
request's scope for the Starlette routes, and here for the checks of a batch the enumeration guard
refuses.
"""

from __future__ import annotations

import asyncio
import hashlib

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pipelines import paths
from pipelines.exchange.errors import ExchangeRefused
from pipelines.exchange.federated import prefill_across, verify_across
from pipelines.prereview.queue import QueueError
from pipelines.prereview.review import check_claimed, judge, local_answer
from pipelines.serving.bundles import bundle_prefill
from pipelines.serving.audit import entries_about
from pipelines.serving.http.auth import who_presented
from pipelines.serving.http.json_endpoint import (
    REFUSAL,
    body_expected,
    error_answer,
    json_object,
    peer_of,
    read_body,
    too_large,
)
from pipelines.serving.http.service import Service
from pipelines.serving.prefill import CASE_ID, RequestError, prefill, subject_key
from pipelines.serving.verify import verify_many, verify_one

BATCH_CHUNK = 1000  # items answered, audited (one entry) and sent together
ACCESS_LOG_READER = "SJJ"  # the portal operator: the only consumer that reads access logs
ACCESS_LOG_COLUMNS = ("seq", "at", "consumer", "purpose", "template", "case_id", "released",
                      "withheld")

OPENAPI = paths.ASSETS / "api" / "openapi.json"
PREVIEW = paths.HTML_TEMPLATES / "preview.html"
LIFECYCLE_PAGE = paths.HTML_TEMPLATES / "lifecycle.html"
OFFICER_PAGE = paths.HTML_TEMPLATES / "officer.html"


class _Json(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def require_case_id(case_id) -> None:
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):
        raise RequestError(400, "invalid_request", "case_id is 1-64 letters, digits or ._:-",
                           ["case_id"])


def access_log_subject(raw: str) -> tuple[str, str]:
    """(kind, store key) of the subject an access log is asked for: a citizen ID or a USCC."""
    kind, key = "person", subject_key("person", raw)
    if key is None:
        kind, key = "enterprise", subject_key("enterprise", raw)
    if key is None:
        raise RequestError(400, "invalid_request", "subject must be a valid citizen ID "
                           "or USCC", ["subject"])
    return kind, key


def _require_subjects(body: dict) -> None:
    if not isinstance(body["subjects"], dict):
        raise RequestError(400, "invalid_request", "subjects is an object of role: key",
                           ["subjects"])


class Endpoints:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.max_batch_body = svc.limits.max_batch_body_bytes

    # -- shared steps -------------------------------------------------------------------------

    def _refuse(self, request: Request, e: RequestError, consumer: str | None,
                body_read: bool) -> Response:
        """The error answer of a Starlette route; `HotPaths` counts it from the scope."""
        status, payload, headers = error_answer(e)
        if not body_read and body_expected(request.scope)[1]:
            headers.append((b"connection", b"close"))  # its body is never read
        request.scope[REFUSAL] = (consumer or who_presented(
            request.headers.get("authorization", "")), e.code)
        return Response(payload, status_code=status, media_type="application/json",
                        headers={k.decode(): v.decode() for k, v in headers})

    async def _consumer(self, request: Request) -> str:
        return await self.svc.auth.consumer(request.headers.get("authorization", ""),
                                            peer_of(request.scope))

    def _require_purpose(self, body: dict) -> str:
        """A purpose of the list (purposes.yaml): anything else is refused before it is answered,
        cached or written to the audit log."""
        if not isinstance(body["purpose"], str) or body["purpose"] not in self.svc.purposes:
            raise RequestError(400, "invalid_request", "unknown purpose; known: "
                               + ", ".join(sorted(self.svc.purposes)), ["purpose"])
        return body["purpose"]

    def _template_of(self, body: dict):
        """The template a form request names, with its subjects checked to be an object."""
        template = self.svc.templates.get(body["template"]) if isinstance(
            body["template"], str) else None
        if template is None:
            raise RequestError(400, "invalid_request", "unknown template; known: "
                               + ", ".join(sorted(self.svc.templates)), ["template"])
        _require_subjects(body)
        return template

    # -- POST /v1/prefill, /v1/verify: handlers for JsonEndpoint ------------------------------

    async def prefill(self, consumer: str, raw: bytes):
        svc = self.svc
        body = json_object(raw, ("case_id", "purpose", "template", "subjects"))
        template = self._template_of(body)
        try:
            answer, exchanges = prefill(svc.current_store(), svc.cat, template, consumer,
                                        str(body["purpose"]), body["case_id"],
                                        body["subjects"]), None
        except RequestError as e:  # a subject another node holds is asked of it
            if svc.remote is None or e.code != "unknown_subject":
                raise
            found = await prefill_across(svc.current_store(), svc.cat, template, consumer,
                                         str(body["purpose"]), body["case_id"],
                                         body["subjects"], svc.remote, e)
            answer, exchanges = found.answer, found.exchanges
        payload = orjson.dumps(answer.body)
        await svc.audited.append(consumer=consumer, purpose=answer.body["purpose"],
                                 template=answer.body["template"], case_id=answer.body["case_id"],
                                 subjects=answer.subjects, released=answer.released,
                                 withheld=answer.withheld, answer=payload,
                                 **({"detail": {"exchanges": exchanges}} if exchanges else {}))
        return 200, payload, []

    async def prereview(self, consumer: str, raw: bytes):
        """智能辅助审批: an application's claimed values and eligibility judged against what the
        department may receive (pipelines/prereview); audited with the verdict and rule ids."""
        svc = self.svc
        body = json_object(raw, ("case_id", "purpose", "template", "subjects", "claimed"))
        template = self._template_of(body)
        check_claimed(template, body["claimed"])
        args = (svc.current_store(), svc.cat, template, consumer, str(body["purpose"]),
                body["case_id"], body["subjects"])
        exchanges: list[dict] = []
        try:
            answer = prefill(*args)
        except RequestError as e:  # a subject held by another node is asked of it, if any
            if e.code != "unknown_subject":
                raise
            if svc.remote is not None:
                found = await prefill_across(*args, svc.remote, e)
                answer, exchanges = found.answer, found.exchanges
            else:
                answer = local_answer(*args, e)
        review = judge(svc.prereview_rules, template, answer, body["claimed"])
        payload = orjson.dumps(review.body)
        # queued for the officers before it is audited and sent: a failure of either leaves no
        # audit entry of an answer never sent
        await asyncio.to_thread(svc.queue.add, consumer, review.body)
        await svc.audited.append(
            consumer=consumer, purpose=review.body["purpose"],
            template=f"prereview:{template.code}", case_id=review.body["case_id"],
            subjects=review.subjects, released=review.released, withheld=review.withheld,
            answer=payload, detail={"verdict": review.body["verdict"], "rules": {
                f"{f['rule']}@{f['role']}": f["status"] for f in review.body["findings"]},
                **({"exchanges": exchanges} if exchanges else {})})
        return 200, payload, []

    async def decision(self, consumer: str, raw: bytes):
        """An officer's decision on a pre-reviewed case, kept beside the machine's verdict."""
        body = json_object(raw, ("case_id", "decision", "officer", "reason"))
        require_case_id(body["case_id"])
        if not all(isinstance(body[k], str) for k in ("decision", "officer", "reason")):
            raise RequestError(400, "invalid_request", "decision, officer and reason are text",
                               ["decision", "officer", "reason"])
        try:
            done = await asyncio.to_thread(self.svc.queue.decide, consumer, body["case_id"],
                                           body["decision"], body["officer"][:64],
                                           body["reason"][:500])
        except QueueError as e:
            raise RequestError(e.status, e.code, e.detail, ["case_id"]) from None
        payload = orjson.dumps(done)
        await self.svc.audited.append(
            consumer=consumer, purpose="PREREVIEW_DECISION", template="prereview-decision",
            case_id=body["case_id"], subjects=[], released=[], withheld=[], answer=payload,
            detail={"decision": done["decision"], "machine_verdict": done["machine_verdict"],
                    "officer": done["decided_by"]})
        return 200, payload, []

    async def queue(self, request: Request) -> Response:
        """The department's pre-reviewed applications (open ones, or all with ?all=1), as it
        received them: a release again, so audited before it is sent."""
        svc, consumer = self.svc, None
        try:
            consumer = await self._consumer(request)
        except RequestError as e:
            return self._refuse(request, e, consumer, False)
        items = await asyncio.to_thread(svc.queue.items, consumer,
                                        request.query_params.get("all") != "1")
        payload = orjson.dumps({"department": consumer, "applications": items})
        await svc.audited.append(consumer=consumer, purpose="PREREVIEW_QUEUE",
                                 template="prereview-queue", case_id="queue", subjects=[],
                                 released=[i["case_id"] for i in items], withheld=[],
                                 answer=payload)
        return Response(payload, media_type="application/json")

    async def officer_page(self, _: Request) -> Response:
        return Response(OFFICER_PAGE.read_bytes(), media_type="text/html; charset=utf-8")

    async def bundle(self, consumer: str, raw: bytes):
        """一类事: every form of a bundle from one set of subjects (pipelines/serving/bundles.py);
        one audit entry per form answered, each under its template's own purpose."""
        svc = self.svc
        body = json_object(raw, ("case_id", "bundle", "subjects"))
        require_case_id(body["case_id"])
        bundle = svc.bundles.get(body["bundle"]) if isinstance(body["bundle"], str) else None
        if bundle is None:
            raise RequestError(400, "invalid_request", "unknown bundle; known: "
                               + ", ".join(sorted(svc.bundles)), ["bundle"])
        _require_subjects(body)
        found = bundle_prefill(svc.current_store(), svc.cat, svc.templates, bundle, consumer,
                               body["case_id"], body["subjects"])
        payload = orjson.dumps(found.body)
        for code, a in found.forms.items():
            await svc.audited.append(
                consumer=consumer, purpose=code, template=code, case_id=body["case_id"],
                subjects=a.subjects, released=a.released, withheld=a.withheld,
                answer=orjson.dumps(found.body["forms"][code]),
                detail={"bundle": bundle.code, "answer_digest_of_bundle":
                        hashlib.sha256(payload).hexdigest()})
        return 200, payload, []

    async def verify(self, consumer: str, raw: bytes):
        svc = self.svc
        body = json_object(raw, ("case_id", "purpose", "check", "subject"))
        require_case_id(body["case_id"])
        purpose = self._require_purpose(body)
        refused = svc.enumeration.refusal(consumer, body["case_id"], body)
        if refused is not None:
            raise refused
        answer, check = verify_one(svc.current_store(), svc.cat, consumer, purpose, body)
        exchanges = None
        if svc.remote is not None and answer["status"] == "unknown_subject":
            answer, exchanges = await verify_across(answer, body, consumer, purpose,
                                                    body["case_id"], svc.remote)
        payload = orjson.dumps({"case_id": body["case_id"], **answer})
        released = [answer["check"]] if answer["status"] != "withheld" else []
        await svc.audited.append(consumer=consumer, purpose=body["purpose"],
                                 template=f"check:{answer['check']}", case_id=body["case_id"],
                                 subjects=check.subjects, released=released,
                                 withheld=[answer["check"]] if not released else [],
                                 answer=payload,
                                 **({"detail": {"exchanges": exchanges}} if exchanges else {}))
        return 200, payload, []

    # -- POST /v1/batch -----------------------------------------------------------------------

    async def batch(self, request: Request) -> Response:
        """{"case_id", "purpose", "checks": [{check, subject, ...}, ...]}: one NDJSON line per
        check, in order; each chunk is audited before it is sent. At most max_batch_checks
        checks a call, each taking one token of the consumer's check rate."""
        consumer, raw = None, None
        try:
            consumer = await self._consumer(request)
            raw = await self._batch_body(request)
            if raw is None:
                return Response(status_code=400)  # the caller went away: nobody reads this
            body = self._batch_request(consumer, raw)
        except RequestError as e:
            return self._refuse(request, e, consumer, raw is not None)
        items = self._guard_batch(request, consumer, body["case_id"], body["checks"])
        return StreamingResponse(self._batch_lines(consumer, body["purpose"], body["case_id"],
                                                   items), media_type="application/x-ndjson")

    async def _batch_body(self, request: Request) -> bytes | None:
        """The body (None if the caller went away); 413 from its Content-Length when it can."""
        if body_expected(request.scope)[0] > self.max_batch_body:
            raise too_large(self.max_batch_body)
        return await read_body(request.receive, self.max_batch_body)

    def _batch_request(self, consumer: str, raw: bytes) -> dict:
        """The batch as asked, or the RequestError that refuses all of it."""
        body = json_object(raw, ("case_id", "purpose", "checks"))
        require_case_id(body["case_id"])
        self._require_purpose(body)
        if not isinstance(body["checks"], list) or not body["checks"]:
            raise RequestError(400, "invalid_request", "checks is a non-empty list",
                               ["checks"])
        cap = self.svc.limits.max_batch_checks
        if len(body["checks"]) > cap:
            raise RequestError(413, "too_many_checks", f"at most {cap} checks a call; send "
                               "more as several calls", ["checks"])
        wait = self.svc.check_limiter.wait_needed(consumer, len(body["checks"]))
        if wait:
            raise RequestError(429, "rate_limited", f"over the consumer's check rate; retry "
                               f"after {wait:.2f} s", retry_after=wait)
        return body

    def _guard_batch(self, request: Request, consumer: str, case_id: str, checks: list) -> list:
        """Each check, or its refusal by the enumeration guard (counted as a refusal each)."""
        items = self.svc.guard(consumer, case_id, checks)
        refused_items = sum(isinstance(i, RequestError) for i in items)
        for _ in range(refused_items):
            self.svc.refusals.count(peer_of(request.scope), consumer, "/v1/batch", 403,
                                    "enumeration_limit")
        return items

    async def _batch_lines(self, consumer: str, purpose: str, case_id: str, items: list):
        svc = self.svc
        for start in range(0, len(items), BATCH_CHUNK):
            out, subjects, released, withheld = [], [], [], []
            chunk_items = items[start:start + BATCH_CHUNK]
            asked = [i for i in chunk_items if not isinstance(i, RequestError)]
            answers = iter(verify_many(svc.current_store(), svc.cat, consumer, purpose, asked))
            for i, item in enumerate(chunk_items, start=start):
                result = item if isinstance(item, RequestError) else next(answers)
                if isinstance(result, RequestError):
                    out.append({"index": i, "status": result.status, **result.body()})
                    continue
                answer, check = result
                subjects += check.subjects
                (withheld if answer["status"] == "withheld" else released).append(
                    f"{i}:{answer['check']}")
                out.append({"index": i, **answer})
            chunk = b"\n".join(map(orjson.dumps, out)) + b"\n"
            await svc.audited.append(consumer=consumer, purpose=purpose, template="batch",
                                     case_id=case_id, subjects=subjects,
                                     released=released, withheld=withheld, answer=chunk)
            yield chunk

    # -- GET ----------------------------------------------------------------------------------

    async def access_log(self, request: Request) -> Response:
        """A data subject's access log: who asked, when, for which case and purpose, what was
        released. For the consumers that run the subject's own portal (here: SJJ). Reading it is
        a release too: audited (template "access-log") before it is sent."""
        svc, consumer = self.svc, None
        try:
            consumer = await self._consumer(request)
            if consumer != ACCESS_LOG_READER:
                raise RequestError(403, "not_entitled", "only the portal operator (SJJ) reads "
                                   "access logs")
            kind, key = access_log_subject(request.query_params.get("subject", ""))
            case_id = request.query_params.get("case_id", "access-log")
            require_case_id(case_id)
        except RequestError as e:
            return self._refuse(request, e, consumer, False)
        # in a thread: the entries not indexed yet are read from the log's tail (up to the
        # indexer's 16 MiB lag), which must not hold up the other requests' event loop
        entries = await asyncio.to_thread(entries_about, svc.access, svc.audit_secret,
                                          f"{kind}:{key}")
        payload = orjson.dumps({"subject": key, "entries": [
            {k: e[k] for k in ACCESS_LOG_COLUMNS} for e in entries]})
        await svc.audited.append(consumer=consumer, purpose="SUBJECT_ACCESS",
                                 template="access-log", case_id=case_id,
                                 subjects=[f"{kind}:{key}"], released=["access_log"], withheld=[],
                                 answer=payload)
        return Response(payload, media_type="application/json")

    # -- POST /v1/exchange: another node's request, through the national exchange ------------

    async def exchange(self, request: Request) -> Response:
        """Answered under this node's list, audited, signed (pipelines/exchange/answering.py).
        A message that is not a stamped, signed, fresh request for this node is refused and
        counted in the refusal log with the protocol's reason."""
        svc = self.svc
        if svc.answering is None:
            return self._refuse(request, RequestError(
                404, "not_on_exchange", "this node is not a member of the national exchange"),
                None, False)
        raw = await request.body()
        try:
            if len(raw) > svc.limits.max_body_bytes:
                raise ExchangeRefused("malformed", "message too large")
            answered = svc.answering.answer(raw, svc.current_store())
        except ExchangeRefused as e:
            return self._refuse(request, RequestError(403, f"exchange_{e.code}", e.message),
                                "exchange", True)
        except OSError:  # the directory is being replaced, or gone: the exchange may retry
            return self._refuse(request, RequestError(
                503, "exchange_directory_unavailable", "this node cannot read the exchange's "
                "directory just now"), "exchange", True)
        await svc.audited.append(**answered.audit)
        return Response(answered.wire, media_type="application/json")

    async def lifecycle(self, _: Request) -> Response:
        """The life-cycle lists and bundles (no data): stage -> affairs -> departments -> the
        data each form needs and which providers hold it."""
        return Response(self.svc.lifecycle_json, media_type="application/json")

    async def lifecycle_page(self, _: Request) -> Response:
        return Response(LIFECYCLE_PAGE.read_bytes(), media_type="text/html; charset=utf-8")

    async def templates(self, _: Request) -> Response:
        """The life-event templates (roles and field labels: no data), for forms and the page."""
        return _Json({code: {"name_zh": t.name_zh, "name_en": t.name_en, "roles": {
            role: {"name_zh": r.name_zh, "name_en": r.name_en, "subject": r.subject,
                   "fields": [{"code": f.code, "label_zh": f.label_zh, "label_en": f.label_en}
                              for f in r.fields]} for role, r in t.roles.items()}}
            for code, t in self.svc.templates.items()})

    async def preview(self, _: Request) -> Response:
        return Response(PREVIEW.read_bytes(), media_type="text/html; charset=utf-8")

    async def openapi(self, _: Request) -> Response:
        return Response(OPENAPI.read_bytes(), media_type="application/json")

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"ok": True, "store": self.svc.store_target})
