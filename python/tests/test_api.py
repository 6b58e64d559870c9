"""The Python API: the README's quick start, keys, sealing, opening, errors, threads."""

import pickle
import re
import sys
import threading

import pytest

import rpcseal

from conftest import ROOT


def readme_python_blocks(section: str):
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_readme_quick_start_runs_as_written():
    blocks = readme_python_blocks("Python")
    assert blocks, "README has no ```python block in its Python section"
    quick = blocks[0]
    # The quick start, word for word.
    assert 'sealer = rpcseal.Sealer(alice, [bob.public()], mode="mac")' in quick
    assert 'assert e.kind == "replayed"' in quick
    ns: dict = {}
    exec(compile(quick, "README.md (Python quick start)", "exec"), ns)
    msg = ns["msg"]
    assert msg.payload == b'{"sku": 42}'
    assert msg.metadata == {"method": "inventory.get"}
    assert msg.sender == ns["alice"].key_id


def pair(mode="signed"):
    alice, bob = rpcseal.Identity.generate(), rpcseal.Identity.generate()
    sealer = rpcseal.Sealer(alice, [bob.public()], mode=mode)
    opener = rpcseal.Opener(identity=bob, trust=[alice.public()])
    return alice, bob, sealer, opener


@pytest.mark.parametrize("mode", ["signed", "mac", "sign-only"])
def test_round_trip_in_every_mode(mode):
    alice, _, sealer, opener = pair(mode)
    env = sealer.seal(b"payload", {"k": "v"})
    assert isinstance(env, bytes)
    msg = opener.open(env)
    assert msg.payload == b"payload"
    assert msg.metadata == {"k": "v"}
    assert msg.sender == alice.key_id
    assert msg.session.mode == mode
    assert msg.session.recipients == 1
    assert msg.authenticated is True
    assert msg.seq == 0
    assert opener.open(sealer.seal(b"")).seq == 1


def test_every_rejection_has_a_kind():
    alice, bob, sealer, opener = pair()
    env = bytearray(sealer.seal(b"x"))
    env[-1] ^= 1
    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(bytes(env))
    assert e.value.kind == "bad_authenticator"
    assert isinstance(e.value, rpcseal.RpcsealError)

    mallory = rpcseal.Identity.generate()
    forged = rpcseal.Sealer(mallory, [bob.public()]).seal(b"x")
    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(forged)
    assert e.value.kind == "untrusted_sender"

    carol = rpcseal.Identity.generate()
    elsewhere = rpcseal.Sealer(alice, [carol.public()]).seal(b"x")
    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(elsewhere)
    assert e.value.kind == "not_for_us"

    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(b"")
    assert e.value.kind == "malformed"
    assert set(rpcseal.error_kinds()) >= {"replayed", "bad_authenticator", "malformed"}


def test_tampered_copy_changes_nothing_then_original_then_replay():
    _, _, sealer, opener = pair("mac")
    env = sealer.seal(b"once")
    bad = bytearray(env)
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(rpcseal.Rejected):
        opener.open(bytes(bad))
    assert opener.open(env).payload == b"once"
    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(env)
    assert e.value.kind == "replayed"


def test_misuse_is_not_a_rejection():
    alice = rpcseal.Identity.generate()
    with pytest.raises(rpcseal.MisuseError) as e:
        rpcseal.Sealer(alice, [])
    assert e.value.kind == "no_recipients"
    with pytest.raises(rpcseal.MisuseError) as e:
        rpcseal.Sealer(alice, [rpcseal.GroupKey.generate().public()], mode="mac")
    assert e.value.kind == "mac_to_group"
    with pytest.raises(rpcseal.MisuseError) as e:
        rpcseal.Sealer(alice, [alice.public()], mode="fast")
    assert e.value.kind == "invalid_config"
    with pytest.raises(rpcseal.MisuseError) as e:
        rpcseal.Sealer(alice, [alice])  # a secret key where a public one belongs
    assert e.value.kind == "secret_key_as_recipient"
    with pytest.raises(rpcseal.MisuseError) as e:
        rpcseal.Opener(trust=[alice.public()])
    assert e.value.kind == "no_keys"
    with pytest.raises(TypeError):
        rpcseal.Sealer(alice, [alice.public()]).seal("a str is not bytes")


def test_key_strings_and_files_in_the_cli_formats(tmp_path):
    alice = rpcseal.Identity.generate()
    secret = alice.to_secret_string()
    assert secret.startswith("RPCSEAL-SECRET-ID:")
    again = rpcseal.Identity.from_secret_string(secret)
    assert again.key_id == alice.key_id
    public = str(alice.public())
    assert public.startswith("rpcseal-pub-id:")
    assert rpcseal.PublicIdentity.parse(public) == alice.public()
    assert rpcseal.PublicIdentity(public).key_id == alice.key_id

    f = tmp_path / "alice.key"
    f.write_text(f"# rpcseal identity\n# public key: {public}\n{secret}\n")
    assert rpcseal.Identity.from_file(str(f)).key_id == alice.key_id
    p = tmp_path / "alice.pub"
    p.write_text(f"# alice\n{public}\n")
    assert rpcseal.PublicIdentity.from_file(str(p)) == alice.public()
    with pytest.raises(rpcseal.KeyFormatError) as e:
        rpcseal.PublicIdentity.from_file(str(f))
    assert e.value.kind == "file"
    assert secret not in str(e.value)

    with pytest.raises(rpcseal.KeyFormatError) as e:
        rpcseal.Identity.from_secret_string(secret[:-2] + ("A" if secret[-2] != "A" else "B")
                                            + secret[-1])
    assert e.value.kind in ("checksum", "encoding", "invalid")

    group = rpcseal.GroupKey.generate()
    g2 = rpcseal.GroupKey.from_secret_string(group.to_secret_string())
    assert str(g2.public()) == str(group.public())
    sym = rpcseal.SymmetricKey.generate()
    assert rpcseal.SymmetricKey.from_secret_string(sym.to_secret_string()).key_id == sym.key_id


def test_secrets_never_print():
    alice = rpcseal.Identity.generate()
    group = rpcseal.GroupKey.generate()
    sym = rpcseal.SymmetricKey.generate()
    for key in (alice, group, sym):
        secret = key.to_secret_string()
        body = secret.split(":", 1)[1]
        for shown in (repr(key), str(key), f"{key}", f"{key!r}"):
            assert body not in shown
            assert "secret not shown" in shown
        with pytest.raises(rpcseal.MisuseError):
            pickle.dumps(key)


def test_group_and_symmetric_recipients():
    alice = rpcseal.Identity.generate()
    group = rpcseal.GroupKey.generate()
    sym = rpcseal.SymmetricKey.generate()
    env = rpcseal.Sealer(alice, [group.public(), sym]).seal(b"both")
    o1 = rpcseal.Opener(group_keys=[group], trust=[alice.public()])
    o2 = rpcseal.Opener(symmetric_keys=[sym], trust=[str(alice.public())])
    assert o1.open(env).session.via_group is True
    assert o2.open(env).payload == b"both"


def test_keyring_names_validity_and_revocation():
    alice, bob, sealer, _ = pair()
    ring = rpcseal.Keyring.parse(f"trust alice {alice.public()}\n")
    assert len(ring) == 1 and ring.names() == ["alice"]
    opener = rpcseal.Opener(identity=bob, keyring=ring)
    msg = opener.open(sealer.seal(b"1"))
    assert msg.sender_name == "alice"
    opener.revoke(alice.key_id)
    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(sealer.seal(b"2"))
    assert e.value.kind == "revoked"

    expired = rpcseal.Keyring()
    expired.add("alice", alice.public(), valid_until=1000)
    o = rpcseal.Opener(identity=bob, keyring=expired)
    with pytest.raises(rpcseal.Rejected) as e:
        o.open(sealer.seal(b"3"))
    assert e.value.kind == "expired"
    with pytest.raises(rpcseal.KeyFormatError) as e:
        rpcseal.Keyring.parse("trust alice not-a-key\n")
    assert e.value.kind == "keyring"


def test_legacy_v2_only_by_explicit_opt_in_and_as_a_distinct_type():
    alice, bob, sealer, _ = pair()
    v2 = rpcseal.seal_legacy_v2('{"method": "ping", "args": {}}').encode()
    strict = rpcseal.Opener(identity=bob, trust=[alice.public()])
    for call in (strict.open, strict.open_any):
        with pytest.raises(rpcseal.Rejected) as e:
            call(v2)
        assert e.value.kind == "legacy_not_allowed"
    lax = rpcseal.Opener(
        identity=bob, trust=[alice.public()],
        policy=rpcseal.Policy(dangerous_accept_unauthenticated_legacy_v2=True))
    got = lax.open_any(v2)
    assert isinstance(got, rpcseal.LegacyMessage)
    assert not isinstance(got, rpcseal.Opened)
    assert got.authenticated is False
    assert got.version == (2, 0)
    assert got.unauthenticated_message == '{"method": "ping", "args": {}}'
    # open() never returns a legacy message, whatever the policy.
    with pytest.raises(rpcseal.Rejected) as e:
        lax.open(v2)
    assert e.value.kind == "legacy_not_allowed"
    assert isinstance(lax.open_any(sealer.seal(b"v3")), rpcseal.Opened)


def test_policy_restricts_modes():
    alice, bob, sealer, _ = pair("mac")
    opener = rpcseal.Opener(identity=bob, trust=[alice.public()],
                            policy=rpcseal.Policy(modes=["signed"]))
    with pytest.raises(rpcseal.Rejected) as e:
        opener.open(sealer.seal(b"x"))
    assert e.value.kind == "mode_not_allowed"


def test_file_replay_store_survives_a_restart(tmp_path):
    alice, bob, sealer, _ = pair()
    env = sealer.seal(b"x")
    state = str(tmp_path / "replay.state")
    with pytest.raises(rpcseal.ReplayStoreError):
        rpcseal.FileReplayStore(state)  # not there: never silently started empty
    first = rpcseal.Opener(identity=bob, trust=[alice.public()],
                           replay_store=rpcseal.FileReplayStore(state, create=True))
    first.open(env)
    del first
    second = rpcseal.Opener(identity=bob, trust=[alice.public()],
                            replay_store=rpcseal.FileReplayStore(state))
    with pytest.raises(rpcseal.Rejected) as e:
        second.open(env)
    assert e.value.kind == "replayed"


def test_replay_store_given_as_a_string(tmp_path):
    alice, bob, sealer, _ = pair()
    env = sealer.seal(b"x")
    rpcseal.FileReplayStore(tmp_path / "replay.state", create=True)
    state = f"file:{tmp_path / 'replay.state'}"
    rpcseal.Opener(identity=bob, trust=[alice.public()], replay_store=state).open(env)
    again = rpcseal.Opener(identity=bob, trust=[alice.public()], replay_store=state)
    with pytest.raises(rpcseal.Rejected) as e:
        again.open(env)
    assert e.value.kind == "replayed"
    rpcseal.Opener(identity=bob, trust=[alice.public()], replay_store="memory").open(env)
    with pytest.raises(rpcseal.MisuseError):
        rpcseal.Opener(identity=bob, trust=[alice.public()], replay_store="postgres://x")


def test_redis_replay_store_is_shared(redis_url):
    assert rpcseal.HAS_REDIS
    alice, bob, sealer, _ = pair()
    prefix = f"rpcseal:pytest:{alice.key_id}"
    store = lambda: rpcseal.RedisReplayStore(redis_url, key_prefix=prefix,  # noqa: E731
                                             create_marker_if_absent=True)
    a = rpcseal.Opener(identity=bob, trust=[alice.public()], replay_store=store())
    b = rpcseal.Opener(identity=bob, trust=[alice.public()], replay_store=store())
    env = sealer.seal(b"x")
    a.open(env)
    with pytest.raises(rpcseal.Rejected) as e:
        b.open(env)
    assert e.value.kind == "replayed"


def test_unreachable_redis_is_an_error_not_a_silent_fallback():
    with pytest.raises(rpcseal.ReplayStoreError):
        rpcseal.RedisReplayStore("redis://127.0.0.1:1/", connect_timeout=0.5)


def test_one_opener_many_threads_each_envelope_accepted_once():
    alice, bob, _, opener = pair("mac")
    sealers = [rpcseal.Sealer(alice, [bob.public()], mode="mac") for _ in range(4)]
    envelopes = [s.seal(f"{i}-{j}".encode()) for i, s in enumerate(sealers) for j in range(50)]
    accepted, rejected = [], []
    lock = threading.Lock()

    def work():
        for env in envelopes:  # every thread tries every envelope
            try:
                m = opener.open(env)
                with lock:
                    accepted.append(m.payload)
            except rpcseal.Rejected as e:
                with lock:
                    rejected.append(e.kind)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == sorted(f"{i}-{j}".encode() for i in range(4) for j in range(50))
    assert len(rejected) == 5 * len(envelopes)
    assert set(rejected) == {"replayed"}


def test_the_gil_is_released_while_sealing_and_opening():
    # With a switch interval far longer than the calls, the waiting thread can run
    # before the main thread looks at `ran` only if seal()/open() released the GIL.
    _, _, sealer, opener = pair("signed")
    payload = bytes(1024 * 1024)
    ran = []
    inside = threading.Event()

    def waiter():
        if inside.wait(30):
            ran.append(1)

    old = sys.getswitchinterval()
    t = threading.Thread(target=waiter)
    t.start()
    try:
        sys.setswitchinterval(30.0)
        inside.set()
        opener.open(sealer.seal(payload))
        released = bool(ran)  # read before anything else can release the GIL
    finally:
        sys.setswitchinterval(old)
        inside.set()
        t.join()
    assert released, "no other thread ran during a 1 MiB seal and open"


def test_inspect_reads_the_cleartext_header_without_keys():
    alice, _, sealer, _ = pair()
    info = rpcseal.inspect(sealer.seal(b"secret payload", {"method": "m"}))
    assert info["version"] == 3
    assert info["metadata"] == {"method": "m"}
    assert info["session"]["sender"] == alice.key_id


def test_request_and_bound_reply_with_the_core_binding():
    client, service, other = (rpcseal.Identity.generate() for _ in range(3))
    requests = rpcseal.Sealer(client, [service.public()], mode="mac")
    incoming = rpcseal.Opener(identity=service, trust=[client.public()])
    replies = rpcseal.Opener(identity=client, trust=[service.public(), other.public()])
    responder = rpcseal.Responder(service, mode="mac")

    envelope, pending = requests.seal_request(
        b"q", {rpcseal.RPC_METHOD: "inventory.get", rpcseal.RPC_REPLY_TO: "reply_q1"},
        service.public())
    assert pending.responder == service.key_id and len(pending.request_id) == 64
    request = incoming.open(envelope)
    ctx = incoming.request_context(request)
    assert ctx.reply_to == "reply_q1" and ctx.client == client.public()
    ctx.check_reply_to("reply_q1")
    with pytest.raises(rpcseal.Rejected) as e:
        ctx.check_reply_to("somewhere_else")
    assert e.value.kind == "reply_to_mismatch"

    # A reply from a trusted identity the request was not sealed to: refused, no state.
    forged = rpcseal.Sealer(other, [client.public()]).seal(
        b"forged", {rpcseal.RPC_IN_REPLY_TO: pending.request_id})
    with pytest.raises(rpcseal.Rejected) as e:
        replies.open_reply(forged, pending)
    assert e.value.kind == "wrong_responder"

    reply = responder.seal_reply(ctx, b"a")
    assert replies.open_reply(reply, pending).payload == b"a"
    with pytest.raises(rpcseal.Rejected) as e:
        replies.open_reply(reply, pending)
    assert e.value.kind == "replayed"
    # A reply offered as a request is refused by the request context.
    with pytest.raises(rpcseal.Rejected) as e:
        rpcseal.Opener(identity=client, trust=[service.public()]).request_context(
            rpcseal.Opener(identity=client, trust=[service.public()]).open(
                responder.seal_reply(ctx, b"b")))
    assert e.value.kind == "not_a_request"


def test_replies_carry_their_block_until_the_client_acknowledges_the_reply_session():
    # spec/rpc.md §6.3: two calls in flight, replies delivered in the other order.
    client, service = rpcseal.Identity.generate(), rpcseal.Identity.generate()
    requests = rpcseal.Sealer(client, [service.public()], mode="mac")
    incoming = rpcseal.Opener(identity=service, trust=[client.public()])
    replies = rpcseal.Opener(identity=client, trust=[service.public()])
    responder = rpcseal.Responder(service, mode="mac", inline="first_message")

    def serve(envelope, answer):
        return responder.seal_reply(incoming.request_context(incoming.open(envelope)), answer)

    (e1, p1), (e2, p2) = (requests.seal_request(b"q", {}, service.public()) for _ in range(2))
    r1, r2 = serve(e1, b"1"), serve(e2, b"2")
    assert replies.open_reply(r2, p2).payload == b"2"
    assert replies.open_reply(r1, p1).payload == b"1"
    # Later requests name the reply session; their replies go by reference.
    envelope, pending = requests.seal_request(b"q", {}, service.public())
    held = rpcseal.inspect(envelope)["metadata"]["rpc.reply-session"]
    assert held == rpcseal.inspect(r1)["session_ref"]
    reply = serve(envelope, b"3")
    assert rpcseal.inspect(reply)["session"] is None
    assert replies.open_reply(reply, pending).payload == b"3"
    # A malformed value: refused with its own kind.
    bad = requests.seal(b"q", {"rpc.reply-session": held.upper()})
    with pytest.raises(rpcseal.Rejected) as e:
        incoming.request_context(incoming.open(bad))
    assert e.value.kind == "invalid_reply_session"


def test_the_stubs_name_every_public_name_of_the_module():
    import ast

    import rpcseal._rpcseal as native

    tree = ast.parse((ROOT / "python" / "rpcseal" / "_rpcseal.pyi").read_text())
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed.add(node.target.id)
    public = {n for n in dir(native) if not n.startswith("_")} | {"__version__"}
    assert public - stubbed == set()
    assert set(rpcseal.__all__) <= public


def test_a_pending_reply_takes_only_the_request_ids_text_form():
    # spec/rpc.md §3: 64 lowercase hex digits, parsed by the core library's rule.
    service = rpcseal.Identity.generate()
    good = "ab" * 32
    assert rpcseal.PendingReply(good, service.key_id).request_id == good
    for bad in ["AB" * 32, "ab" * 31, "ab" * 32 + "0", "zz" * 32, ""]:
        with pytest.raises(rpcseal.MisuseError) as e:
            rpcseal.PendingReply(bad, service.key_id)
        assert e.value.kind == "invalid_request_id"
