"""Python and the `rpcseal` command-line tool read each other's keys and envelopes."""

import json

import rpcseal

from conftest import run_cli


def keygen(cli, path):
    r = run_cli(cli, "keygen", "-o", str(path))
    assert r.returncode == 0, r.stderr
    r = run_cli(cli, "pubkey", str(path))
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_python_seals_what_the_cli_opens(cli, tmp_path):
    alice_pub = keygen(cli, tmp_path / "alice.key")
    bob_pub = keygen(cli, tmp_path / "bob.key")
    alice = rpcseal.Identity.from_file(str(tmp_path / "alice.key"))
    assert str(alice.public()) == alice_pub
    for mode in ("signed", "mac", "sign-only"):
        env = rpcseal.Sealer(alice, [bob_pub], mode=mode).seal(
            b'{"sku": 42}', {"method": "inventory.get"})
        (tmp_path / "env").write_bytes(env)
        r = run_cli(cli, "open", "--key", str(tmp_path / "bob.key"), "--trust", alice_pub,
                    "--json", "-i", str(tmp_path / "env"))
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["metadata"] == {"method": "inventory.get"}
        assert out["sender"] == alice.key_id
    # A tampered envelope fails in the CLI too.
    bad = bytearray(env)
    bad[-3] ^= 1
    (tmp_path / "bad").write_bytes(bytes(bad))
    r = run_cli(cli, "open", "--key", str(tmp_path / "bob.key"), "--trust", alice_pub,
                "-i", str(tmp_path / "bad"))
    assert r.returncode != 0


def test_cli_seals_what_python_opens(cli, tmp_path):
    alice_pub = keygen(cli, tmp_path / "alice.key")
    bob_pub = keygen(cli, tmp_path / "bob.key")
    (tmp_path / "payload").write_bytes(b"from the CLI")
    r = run_cli(cli, "seal", "--from", str(tmp_path / "alice.key"), "--to", bob_pub,
                "--mode", "mac", "--meta", "method=inventory.get",
                "-i", str(tmp_path / "payload"))
    assert r.returncode == 0, r.stderr
    bob = rpcseal.Identity.from_file(str(tmp_path / "bob.key"))
    assert str(bob.public()) == bob_pub
    opener = rpcseal.Opener(identity=bob,
                            trust=[rpcseal.PublicIdentity.parse(alice_pub)])
    msg = opener.open(r.stdout)
    assert msg.payload == b"from the CLI"
    assert msg.metadata == {"method": "inventory.get"}
    assert msg.session.mode == "mac"


def test_cli_legacy_v2_is_read_by_python_only_with_the_opt_in(cli, tmp_path):
    r = run_cli(cli, "legacy-seal", input=b'{"method": "ping"}')
    assert r.returncode == 0, r.stderr
    bob = rpcseal.Identity.generate()
    lax = rpcseal.Opener(identity=bob, trust=[rpcseal.Identity.generate().public()],
                         policy=rpcseal.Policy(dangerous_accept_unauthenticated_legacy_v2=True))
    got = lax.open_any(r.stdout)
    assert isinstance(got, rpcseal.LegacyMessage)
    assert json.loads(got.unauthenticated_message) == {"method": "ping"}
    # What Python writes as v2, the CLI reads only with --allow-legacy.
    v2 = rpcseal.seal_legacy_v2('{"method": "pong"}').encode()
    alice_pub = keygen(cli, tmp_path / "alice.key")
    keygen(cli, tmp_path / "bob.key")
    args = ["open", "--key", str(tmp_path / "bob.key"), "--trust", alice_pub]
    assert run_cli(cli, *args, input=v2).returncode == 1
    r = run_cli(cli, *args, "--allow-legacy", input=v2)
    assert r.returncode == 4, r.stderr  # written, but "unauthenticated", never 0
    assert json.loads(r.stdout) == {"method": "pong"}
