"""The ceiling for the prefill benchmark: a bare Starlette endpoint returning a constant, served
by the same uvicorn settings as the service."""

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"case_id":"X","template":"NEWBORN","purpose":"NEWBORN","roles":{}}'


async def constant(_request):
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/v1/prefill", constant, methods=["POST"])])
