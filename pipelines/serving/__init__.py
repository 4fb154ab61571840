"""Serving: prefill and yes/no verification for other government systems, released by the
responsibility list, from a read-only store, every answer in the MAC-chained audit log; the HTTP
service in `http/`."""
