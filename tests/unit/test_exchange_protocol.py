"""The exchange protocol between nodes: a request signed by its node and stamped by the exchange
is accepted once by the node it is for; a tampered byte, an unknown or revoked key, a replay, a
message outside the time window, a call that bypassed the exchange, a forged stamp or another
receiver is refused with its reason. Both suites: Ed25519 and SM2 with SM3."""

import dataclasses
import datetime as dt

import pytest

from pipelines.exchange.directory import EXCHANGE, Directory, Member, MemberKey
from pipelines.exchange.envelope import Envelope, Signer, countersign, open_envelope, seal
from pipelines.exchange.errors import ExchangeRefused
from pipelines.exchange.replay import ReplayGuard
from pipelines.exchange.suites import ED25519, SM2_SM3

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
BODY = b'{"purpose": "SCHOOL_ENROLL", "subjects": {"child": "510104201501011234"}}'


@pytest.fixture(params=[ED25519, SM2_SM3], ids=lambda s: s.name)
def world(request):
    """Three members (重庆, 四川 and the exchange) on one suite, and their own keys."""
    s = request.param
    keys = {code: s.generate() for code in ("500000", "510000", EXCHANGE)}
    old = s.generate()
    d = Directory()
    for code, k in keys.items():
        listed = [MemberKey("k1", s.name, k.public)]
        if code == "500000":
            listed.append(MemberKey("k0", s.name, old.public, revoked=True))
        d.add(Member(code, code, f"http://127.0.0.1/{code}", tuple(listed)))
    signers = {code: Signer(code, "k1", s.name, k.private) for code, k in keys.items()}
    signers["500000-old"] = Signer("500000", "k0", s.name, old.private)
    return d, signers


def through_exchange(d, signers, env, now=T0):
    return countersign(env, d, signers[EXCHANGE], ReplayGuard(), now)


def refused(code, fn, *args):
    with pytest.raises(ExchangeRefused) as caught:
        fn(*args)
    assert caught.value.code == code, caught.value.message
    return caught.value


def test_a_stamped_request_is_accepted_once_by_its_receiver(world):
    d, signers = world
    env = through_exchange(d, signers, seal("request", "r-1", "510000", BODY, signers["500000"],
                                            T0))
    wire = Envelope.from_wire(env.to_wire())  # what travels is what is checked
    inbox = ReplayGuard()
    header = open_envelope(wire, d, "510000", inbox, T0 + dt.timedelta(seconds=1))
    assert header["sender"] == "500000" and header["request_id"] == "r-1" and wire.body == BODY
    refused("replayed", open_envelope, wire, d, "510000", inbox, T0 + dt.timedelta(seconds=2))


def test_a_tampered_byte_is_refused(world):
    d, signers = world
    env = through_exchange(d, signers, seal("request", "r-2", "510000", BODY, signers["500000"],
                                            T0))
    body = BODY.replace(b"SCHOOL_ENROLL", b"AFTER_DEATHXX")
    refused("bad_signature", open_envelope, dataclasses.replace(env, body=body), d, "510000",
            ReplayGuard(), T0)
    header = {**env.header, "receiver": "510000", "request_id": "r-3"}
    refused("bad_signature", open_envelope, dataclasses.replace(env, header=header), d, "510000",
            ReplayGuard(), T0)


def test_unknown_and_revoked_keys_and_unknown_nodes_are_refused(world):
    d, signers = world
    revoked = seal("request", "r-4", "510000", BODY, signers["500000-old"], T0)
    refused("revoked_key", through_exchange, d, signers, revoked)
    stranger = Signer("440300", "k1", signers["500000"].suite, signers["500000"].private)
    refused("unknown_node", through_exchange, d, signers,
            seal("request", "r-5", "510000", BODY, stranger, T0))
    unknown_key = dataclasses.replace(signers["500000"], key_id="k9")
    refused("unknown_key", through_exchange, d, signers,
            seal("request", "r-6", "510000", BODY, unknown_key, T0))
    refused("unknown_node", through_exchange, d, signers,
            seal("request", "r-7", "440300", BODY, signers["500000"], T0))


def test_a_call_around_the_exchange_or_with_a_forged_stamp_is_refused(world):
    d, signers = world
    direct = seal("request", "r-8", "510000", BODY, signers["500000"], T0)
    refused("no_stamp", open_envelope, direct, d, "510000", ReplayGuard(), T0)
    # a node stamping its own message with its own key is not the exchange
    forged = countersign(direct, d, dataclasses.replace(signers["500000"], code=EXCHANGE),
                         ReplayGuard(), T0)
    refused("bad_stamp", open_envelope, forged, d, "510000", ReplayGuard(), T0)
    # a genuine stamp moved onto another message does not verify either
    other = seal("request", "r-9", "510000", BODY, signers["500000"], T0)
    stamped = through_exchange(d, signers, direct)
    refused("bad_stamp", open_envelope, dataclasses.replace(other, stamp=stamped.stamp), d,
            "510000", ReplayGuard(), T0)


def test_messages_outside_the_time_window_and_for_another_node_are_refused(world):
    d, signers = world
    old = seal("request", "r-10", "510000", BODY, signers["500000"],
               T0 - dt.timedelta(minutes=5))
    refused("expired", through_exchange, d, signers, old)
    env = through_exchange(d, signers, seal("request", "r-11", "510000", BODY,
                                            signers["500000"], T0))
    refused("expired", open_envelope, env, d, "510000", ReplayGuard(),
            T0 + dt.timedelta(minutes=5))
    refused("wrong_receiver", open_envelope, env, d, "440300", ReplayGuard(), T0)


def test_the_exchange_refuses_a_replayed_request(world):
    d, signers = world
    env = seal("request", "r-12", "510000", BODY, signers["500000"], T0)
    exchange_seen = ReplayGuard()
    countersign(env, d, signers[EXCHANGE], exchange_seen, T0)
    refused("replayed", countersign, env, d, signers[EXCHANGE], exchange_seen, T0)


def test_garbage_on_the_wire_is_refused_as_malformed():
    for data in (b"", b"{}", b"not json", b'{"header": {}, "body": "", "signature": ""}',
                 b'{"header": {"v": 1}, "body": "!!", "signature": "", "stamp": null}'):
        refused("malformed", Envelope.from_wire, data)


def test_the_directory_survives_its_own_publication(world):
    d, _ = world
    again = Directory.loads(d.dumps())
    assert again.members == d.members
