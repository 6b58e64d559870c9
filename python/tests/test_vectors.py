"""The project's test vectors (vectors/v3), run through the Python API.

Every positive receiver opens its messages and gets the payload, metadata and sender;
every negative case's steps get `ok`, `ok_unauthenticated_legacy` or the declared failure
class, through `Opener.open_any` (vectors/README.md).
"""

import json

import pytest

import rpcseal

from conftest import ROOT

KNOWN_RECEIVER_FIELDS = {
    "identities", "group_keys", "symmetric_keys", "trusted_senders", "sender_validity",
    "revoked_senders", "policy", "replay_store",
}
KNOWN_POLICY_FIELDS = {
    "suites", "modes", "clock_skew", "max_envelope_bytes", "max_payload", "max_recipients",
    "max_metadata_entries", "max_metadata_bytes", "max_session_lifetime",
    "max_session_messages", "dangerous_accept_mac_via_group_key",
    "dangerous_accept_unauthenticated_legacy_v2",
}
# This implementation derives the largest envelope from the largest payload.
ENVELOPE_SLACK = 1024 * 1024


def load(kind):
    out = []
    for path in sorted((ROOT / "vectors" / "v3" / kind).glob("*.json")):
        doc = json.loads(path.read_text())
        assert doc["format"] == "rpcseal-vectors/1"
        for case in doc["cases"]:
            out.append(pytest.param(doc, case, id=f"{path.stem}/{case['name']}"))
    return out


POSITIVE = load("positive")
NEGATIVE = load("negative")


def test_every_vector_is_collected():
    # vectors/README.md: 18 positive and 182 negative cases when it was written; later
    # issues add cases, never remove them.
    assert len(POSITIVE) >= 18
    assert len(NEGATIVE) >= 182


def key(doc, name):
    k = doc["keys"][name]
    if k["type"] == "identity":
        return rpcseal.Identity.from_raw(bytes.fromhex(k["ed25519_seed"]),
                                         bytes.fromhex(k["x25519_secret"]))
    if k["type"] == "group":
        return rpcseal.GroupKey.from_raw(bytes.fromhex(k["x25519_secret"]))
    if k["type"] == "symmetric":
        return rpcseal.SymmetricKey.from_raw(k["key_id"], bytes.fromhex(k["key"]))
    raise AssertionError(f"unknown key type {k['type']}")


def receiver(doc, r):
    assert set(r) <= KNOWN_RECEIVER_FIELDS, set(r) - KNOWN_RECEIVER_FIELDS
    p = r["policy"]
    assert set(p) <= KNOWN_POLICY_FIELDS, set(p) - KNOWN_POLICY_FIELDS
    assert p["max_envelope_bytes"] == p["max_payload"] + ENVELOPE_SLACK
    assert r["replay_store"]["type"] == "memory"
    ring = rpcseal.Keyring()
    for name in r["trusted_senders"]:
        validity = r.get("sender_validity", {}).get(name, {})
        ring.add(name, rpcseal.PublicIdentity.parse(doc["keys"][name]["public_string"]),
                 valid_from=validity.get("valid_from"),
                 valid_until=validity.get("valid_until"))
    for name in r.get("revoked_senders", []):
        ring.revoke(doc["keys"][name]["sender_id"])
    policy = rpcseal.Policy(
        suites=p["suites"], modes=p["modes"], clock_skew=p["clock_skew"],
        max_payload=p["max_payload"], max_recipients=p["max_recipients"],
        max_metadata_entries=p["max_metadata_entries"],
        max_metadata_bytes=p["max_metadata_bytes"],
        max_session_lifetime=p.get("max_session_lifetime"),
        max_session_messages=p.get("max_session_messages"),
        dangerous_accept_mac_via_group_key=p["dangerous_accept_mac_via_group_key"],
        dangerous_accept_unauthenticated_legacy_v2=p[
            "dangerous_accept_unauthenticated_legacy_v2"])
    return rpcseal.Opener(
        identities=[key(doc, n) for n in r["identities"]],
        group_keys=[key(doc, n) for n in r["group_keys"]],
        symmetric_keys=[key(doc, n) for n in r["symmetric_keys"]],
        keyring=ring, policy=policy, replay_store=rpcseal.MemoryReplayStore())


def outcome(opener, envelope, now):
    try:
        got = opener.open_any(envelope, now=now)
    except rpcseal.Rejected as e:
        return e.kind, None
    if isinstance(got, rpcseal.LegacyMessage):
        return "ok_unauthenticated_legacy", got
    return "ok", got


@pytest.mark.parametrize("doc,case", POSITIVE)
def test_positive(doc, case):
    sender_id = doc["keys"][case["sender"]]["sender_id"]
    for rc in case["receivers"]:
        opener = receiver(doc, rc["receiver"])
        for o in rc["opens"]:
            m = case["messages"][o["message"]]
            result, got = outcome(opener, bytes.fromhex(m["envelope"]), o["now"])
            assert result == o["expect"] == "ok"
            assert got.payload == bytes.fromhex(m["payload"])
            assert got.metadata == m["metadata"]
            assert got.sender == sender_id


@pytest.mark.parametrize("doc,case", NEGATIVE)
def test_negative(doc, case):
    opener = receiver(doc, case["receiver"])
    steps = case["steps"]
    for i, step in enumerate(steps):
        result, _ = outcome(opener, bytes.fromhex(step["envelope"]), step["now"])
        assert result == step["expect"], f"step {i}"
    assert steps[-1]["expect"] in (case["failure"], "ok_unauthenticated_legacy")
