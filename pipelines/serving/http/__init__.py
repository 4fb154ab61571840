"""The prefill service over HTTP (Starlette on uvicorn, with the hub's own HTTP protocol and limits)."""
