"""Serving: prefill and yes/no verification for other government systems, released by the
responsibility list, from a read-only store, every answer in the MAC-chained audit log; the HTTP
service in `http/`.

Entry points, by module (imported as modules: the audit writer's process loads only what it
uses): `entitlement.release` (what a department may receive of a golden field, for every door),
`prefill.prefill`, `verify` (`verify_one`, `verify_many`), `store` (`build_store`, `Store`),
`credentials.Credentials`, `audit` (`AuditLog`, `tampering`, `entries_about`), `http.app.create_app`."""
