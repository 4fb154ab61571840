"""Ceilings for the prefill benchmark, served by the same uvicorn settings as the service:
`app` is a bare Starlette endpoint returning a constant (the ceiling issue 5 names); `raw_app` the
same constant from a bare ASGI callable, the floor under the service's hot paths (they bypass
Starlette's request wrapper and middleware), reported beside it so the ratio is not flattered."""

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"case_id":"X","template":"NEWBORN","purpose":"NEWBORN","roles":{}}'


async def constant(_request):
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/v1/prefill", constant, methods=["POST"])])

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def raw_app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": BODY})
