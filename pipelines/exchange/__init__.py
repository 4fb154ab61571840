"""全国通办: the signed exchange between hub nodes through the national exchange.

Entry points, by module: `suites` (`ED25519`, `SM2_SM3`, `suite`: signing suites and their keys),
`envelope` (`seal`, `countersign`, `open_envelope`, `Envelope`: a request or answer signed by its
sender and time-stamped by the exchange), `directory` (`Directory`, `Member`: the nodes, their keys
and services), `replay` (`ReplayGuard`), `errors` (`ExchangeRefused`), `keys` (the node's own
signing keys), `member_entry` (its directory entry, derived from its catalogue)."""
