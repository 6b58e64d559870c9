"""oslo.messaging over the RabbitMQ that .ci/run starts, through `rpcseal+rabbit://`.

Real components only: oslo.messaging 18.3.1 (pinned), its rabbit driver and kombu, and a
rabbitmq-server on loopback ($RPCSEAL_TEST_AMQP_PORT). Never oslo's `fake://` driver.
Under CI=true an unreachable broker fails these tests (conftest.require).
"""

import logging
import threading
import time
import urllib.parse
import uuid
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import kombu
    import oslo_messaging as om
    from oslo_config import cfg

import rpcseal
import rpcseal.oslo

import conftest

CONF = cfg.CONF
WAIT = 20.0  # seconds: the longest any test waits for a message that must arrive


@pytest.fixture(scope="module", autouse=True)
def oslo_config():
    try:
        CONF([], project="rpcseal-tests")
    except cfg.Error:
        pass
    yield


class Party:
    """A service or a client: an identity file and a keyring file."""

    def __init__(self, tmp, name, trusts):
        self.name = name
        self.identity = rpcseal.Identity.generate()
        self.key_file = tmp / f"{name}.key"
        self.key_file.write_text(f"# rpcseal identity\n{self.identity.to_secret_string()}\n")
        self.key_file.chmod(0o600)
        self.trusts = trusts
        self.keyring_file = tmp / f"{name}.keyring"

    def write_keyring(self, parties):
        lines = [f"trust {p.name} {p.identity.public()}" for p in parties
                 if p.name in self.trusts]
        self.keyring_file.write_text("\n".join(lines) + "\n")

    def url(self, port, **options):
        q = {"identity_file": str(self.key_file), "keyring": str(self.keyring_file)}
        q.update(options)
        return (f"rpcseal+rabbit://guest:guest@127.0.0.1:{port}/?"
                + urllib.parse.urlencode(q))


@pytest.fixture(scope="module")
def parties(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oslo-keys")
    ps = {
        "inventory": Party(tmp, "inventory", {"client", "billing", "inventory", "audit"}),
        "billing": Party(tmp, "billing", {"client", "inventory"}),
        "client": Party(tmp, "client", {"inventory", "billing"}),
        "audit": Party(tmp, "audit", {"inventory"}),
        # Knows the services' keys but nobody trusts it.
        "mallory": Party(tmp, "mallory", {"inventory", "billing"}),
    }
    for p in ps.values():
        p.write_keyring(ps.values())
    return ps


def to(topic):
    """The transport URL option that addresses `topic` to the inventory service."""
    return {"recipients": f"{topic}:inventory"}


def plain_url(port):
    return f"rabbit://guest:guest@127.0.0.1:{port}/"


class Endpoint:
    def __init__(self, name="inventory"):
        self.name = name
        self.calls = []
        self.cond = threading.Condition()
        self.release = threading.Event()
        self.entered = threading.Event()

    def _record(self, what):
        with self.cond:
            self.calls.append(what)
            self.cond.notify_all()

    def get(self, ctxt, sku):
        self._record(("get", sku))
        return {"sku": sku, "count": 7, "by": self.name}

    def record(self, ctxt, item):
        self._record(("record", item))

    def slow(self, ctxt):
        self.entered.set()
        self.release.wait(WAIT)
        return "slow reply"

    def wait_for(self, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while what not in self.calls:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what} never arrived; got {self.calls}")
                self.cond.wait(left)

    def count(self, what):
        with self.cond:
            return self.calls.count(what)


class Servers:
    """RPC servers and transports started by a test, all stopped at its end."""

    def __init__(self):
        self.servers = []
        self.transports = []

    def transport(self, url):
        t = om.get_rpc_transport(CONF, url=url)
        self.transports.append(t)
        return t

    def server(self, url, topic, server="s1", endpoint=None):
        endpoint = endpoint or Endpoint()
        t = self.transport(url)
        s = om.get_rpc_server(t, om.Target(topic=topic, server=server), [endpoint],
                              executor="threading")
        s.start()
        self.servers.append(s)
        return endpoint

    def client(self, url, topic, timeout=10):
        return om.get_rpc_client(self.transport(url), om.Target(topic=topic),
                                 timeout=timeout)

    def stop(self):
        # In parallel: each reply waiter and listener polls the broker with a timeout of
        # up to 5 s, which one after the other would add up.
        def run_all(fns):
            threads = [threading.Thread(target=f) for f in fns]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)

        run_all([s.stop for s in self.servers])
        run_all([s.wait for s in self.servers])
        run_all([t.cleanup for t in self.transports])


@pytest.fixture
def oslo(rabbit_port):
    s = Servers()
    yield s
    s.stop()


@pytest.fixture
def topic():
    return f"inventory-{uuid.uuid4().hex[:8]}"


class Broker:
    """Reads and writes the broker directly, as an attacker on it could."""

    def __init__(self, port):
        self.conn = kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//")
        self.channel = self.conn.channel()

    def capture(self, routing_key, exchange="openstack"):
        """A queue that receives a copy of what is published to `routing_key`."""
        ex = kombu.Exchange(exchange, type="topic", durable=False, auto_delete=False)
        q = kombu.Queue(f"capture-{uuid.uuid4().hex[:8]}", exchange=ex,
                        routing_key=routing_key, auto_delete=True)
        bound = q(self.channel)
        bound.declare()
        return bound

    def get(self, queue, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = queue.get(no_ack=True)
            if m is not None:
                return m.body if isinstance(m.body, bytes) else m.body.encode()
            time.sleep(0.05)
        raise AssertionError("nothing arrived in the capture queue")

    def publish_to_queue(self, queue_name, body):
        producer = kombu.Producer(self.channel)
        producer.publish(body, exchange="", routing_key=queue_name)

    def close(self):
        self.conn.release()


@pytest.fixture
def broker(rabbit_port):
    b = Broker(rabbit_port)
    yield b
    b.close()


def wait_for_drops(caplog, n, timeout=WAIT):
    """Until the driver has logged `n` dropped messages."""
    deadline = time.monotonic() + timeout
    while True:
        drops = [r for r in caplog.records if "rpcseal: dropped" in r.getMessage()]
        if len(drops) >= n:
            return drops
        assert time.monotonic() < deadline, f"{len(drops)} drops logged, expected {n}"
        time.sleep(0.05)


def driver_of(transport):
    return transport._driver


# ------------------------------------------------------------------------------------


def test_the_driver_is_an_entry_point_and_speaks_v3(parties, oslo, rabbit_port, topic):
    t = oslo.transport(parties["client"].url(rabbit_port, **to(topic)))
    assert isinstance(driver_of(t), rpcseal.oslo.RpcsealRabbitDriver)


def test_call_cast_fanout_and_replies(parties, oslo, rabbit_port, topic):
    inv = parties["inventory"]
    s1 = oslo.server(inv.url(rabbit_port), topic, "s1", Endpoint("s1"))
    s2 = oslo.server(inv.url(rabbit_port), topic, "s2", Endpoint("s2"))
    client = oslo.client(parties["client"].url(rabbit_port, **to(topic)), topic)

    # call: a reply, sealed back to the client and bound to the request
    reply = client.call({}, "get", sku=42)
    assert reply["sku"] == 42 and reply["count"] == 7
    # a call to one server
    assert client.prepare(server="s2").call({}, "get", sku=1)["by"] == "s2"
    # cast
    client.cast({}, "record", item="cast-1")
    # fanout: every server of the topic
    client.prepare(fanout=True).cast({}, "record", item="fan-1")
    s1.wait_for(("record", "fan-1"))
    s2.wait_for(("record", "fan-1"))
    deadline = time.monotonic() + WAIT
    while s1.count(("record", "cast-1")) + s2.count(("record", "cast-1")) < 1:
        assert time.monotonic() < deadline, "the cast never arrived"
        time.sleep(0.05)
    assert s1.count(("record", "cast-1")) + s2.count(("record", "cast-1")) == 1
    # many calls from threads through one transport, each with its own reply
    results = {}

    def call(i):
        results[i] = client.call({}, "get", sku=i)["sku"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {i: i for i in range(8)}


def test_a_queued_message_holds_no_plaintext(parties, oslo, rabbit_port, topic, broker):
    marker = f"MARKER-{uuid.uuid4().hex}"
    cap = broker.capture(topic)
    client = oslo.client(parties["client"].url(rabbit_port, **to(topic)), topic)
    client.cast({"user": "alice"}, "record", item=marker)
    raw = broker.get(cap)
    assert marker.encode() not in raw
    assert b"record" not in raw and b"alice" not in raw
    info = rpcseal.inspect(raw)
    assert info["version"] == 3
    assert info["session"]["mode"] == "signed"
    assert set(info["metadata"]) == {"oslo.kind", "oslo.target"}  # a cast: no rpc.* keys
    # The same cast through the plain rabbit driver: the marker is there to read, so the
    # check above can fail.
    plain = oslo.client(plain_url(rabbit_port), topic)
    plain.cast({"user": "alice"}, "record", item=marker)
    assert marker.encode() in broker.get(cap)


def test_tampered_and_replayed_messages_are_rejected(parties, oslo, rabbit_port, topic,
                                                     broker, caplog):
    caplog.set_level(logging.WARNING, logger="rpcseal.oslo")
    ep = oslo.server(parties["inventory"].url(rabbit_port), topic)
    cap = broker.capture(topic)
    client = oslo.client(parties["client"].url(rabbit_port, **to(topic)), topic)
    client.cast({}, "record", item="original")
    ep.wait_for(("record", "original"))
    original = broker.get(cap)

    # One bit flipped, in the body and in the header: each dropped.
    for at in (len(original) - 5, 40):
        bad = bytearray(original)
        bad[at] ^= 0x01
        broker.publish_to_queue(topic, bytes(bad))
    # The captured original, published again: a replay.
    broker.publish_to_queue(topic, original)
    # Three drops logged (publishes on two connections are not ordered with each other,
    # so the test waits for the log rather than for a later message).
    wait_for_drops(caplog, 3)
    client.cast({}, "record", item="sentinel")
    ep.wait_for(("record", "sentinel"))
    assert ep.count(("record", "original")) == 1
    text = caplog.text
    assert "replayed" in text
    assert "bad_authenticator" in text or "malformed" in text
    for p in parties.values():
        assert p.identity.to_secret_string().split(":", 1)[1] not in text


def test_an_untrusted_sender_is_rejected(parties, oslo, rabbit_port, topic, caplog):
    caplog.set_level(logging.WARNING, logger="rpcseal.oslo")
    ep = oslo.server(parties["inventory"].url(rabbit_port), topic)
    mallory = oslo.client(parties["mallory"].url(rabbit_port, **to(topic)), topic, timeout=2)
    mallory.cast({}, "record", item="from-mallory")
    with pytest.raises(om.MessagingTimeout):
        mallory.call({}, "get", sku=666)
    wait_for_drops(caplog, 2)
    client = oslo.client(parties["client"].url(rabbit_port, **to(topic)), topic)
    client.cast({}, "record", item="sentinel")
    ep.wait_for(("record", "sentinel"))
    assert ("record", "from-mallory") not in ep.calls
    assert ("get", 666) not in ep.calls
    assert "untrusted_sender" in caplog.text


def test_a_forged_reply_fails_the_call_at_once(parties, oslo, rabbit_port, topic, broker):
    ep = oslo.server(parties["inventory"].url(rabbit_port), topic)
    t = oslo.transport(parties["client"].url(rabbit_port, **to(topic)))
    client = om.get_rpc_client(t, om.Target(topic=topic), timeout=WAIT)
    outcome = {}

    def call():
        try:
            outcome["reply"] = client.call({}, "slow")
        except Exception as e:  # noqa: BLE001 - the test inspects it
            outcome["error"] = e

    th = threading.Thread(target=call)
    th.start()
    try:
        assert ep.entered.wait(WAIT)
        drv = driver_of(t)
        ((request_id, call),) = list(drv.rpcseal.calls._d.items())
        reply_q = drv._reply_q
        # billing is trusted by the client, but the call was not sealed to billing: its
        # "reply", naming the right request, is not bound to this call.
        forged = rpcseal.Sealer(parties["billing"].identity,
                                [parties["client"].identity.public()]).seal(
            b'{"result": "forged", "failure": null, "ending": true, "_msg_id": "%s"}'
            % call.msg_id.encode(),
            {"oslo.kind": "reply", "oslo.target": reply_q,
             rpcseal.RPC_IN_REPLY_TO: request_id})
        started = time.monotonic()
        broker.publish_to_queue(reply_q, forged)
        th.join(WAIT)
        assert not th.is_alive()
        assert time.monotonic() - started < WAIT / 2
    finally:
        ep.release.set()
        th.join(WAIT)
    err = outcome.get("error")
    assert isinstance(err, rpcseal.oslo.ReplyRejected), outcome
    assert err.kind == "wrong_responder"


def test_no_recipients_configured_is_a_clear_error_for_the_caller(parties, oslo,
                                                                  rabbit_port):
    client = oslo.client(parties["client"].url(rabbit_port), "nobody-serves-this", timeout=2)
    with pytest.raises(rpcseal.oslo.ConfigurationError, match="no recipients"):
        client.cast({}, "record", item="x")


def test_notifications_are_signed(parties, oslo, rabbit_port, broker):
    topic = f"notif-{uuid.uuid4().hex[:8]}"
    got = []
    cond = threading.Condition()

    class Listener:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            with cond:
                got.append((publisher_id, event_type, payload))
                cond.notify_all()

    audit = parties["audit"]
    lt = om.get_notification_transport(CONF, url=audit.url(rabbit_port))
    oslo.transports.append(lt)
    listener = om.get_notification_listener(lt, [om.Target(topic=topic)], [Listener()],
                                            executor="threading")
    listener.start()
    oslo.servers.append(listener)
    cap = broker.capture(f"{topic}.info")
    inv = parties["inventory"]

    def notify(url, marker):
        nt = om.get_notification_transport(CONF, url=url)
        oslo.transports.append(nt)
        om.Notifier(nt, publisher_id="inventory.s1", driver="messagingv2",
                    topics=[topic]).info({}, "stock.changed", {"marker": marker})

    def wait(marker):
        deadline = time.monotonic() + WAIT
        with cond:
            while not any(p == {"marker": marker} for _, _, p in got):
                assert time.monotonic() < deadline, f"{marker} never arrived: {got}"
                cond.wait(0.5)

    # Consumer keys configured: signed and encrypted to them.
    notify(inv.url(rabbit_port, notification_recipients=f"{topic}:audit"), "encrypted-1")
    raw = broker.get(cap)
    assert b"encrypted-1" not in raw
    assert rpcseal.inspect(raw)["session"]["mode"] == "signed"
    wait("encrypted-1")
    # None configured: signed only, readable on the broker, still verified.
    notify(inv.url(rabbit_port), "clear-2")
    raw = broker.get(cap)
    assert b"clear-2" in raw
    assert rpcseal.inspect(raw)["session"]["mode"] == "sign-only"
    wait("clear-2")
    assert all(pub == "inventory.s1" for pub, _, _ in got)


def test_rolling_upgrade_from_v2_to_v3(parties, oslo, rabbit_port, broker):
    """An old service (plain rabbit) beside a new one through phases a, b and c."""
    inv, cli_party = parties["inventory"], parties["client"]
    old_topic = f"old-{uuid.uuid4().hex[:8]}"
    new_topic = f"new-{uuid.uuid4().hex[:8]}"
    recipients = {"recipients": f"{new_topic}:inventory"}
    old_server = oslo.server(plain_url(rabbit_port), old_topic, endpoint=Endpoint("old"))
    old_client_new = oslo.client(plain_url(rabbit_port), new_topic, timeout=3)

    def new_pair(phase):
        server = oslo.server(inv.url(rabbit_port, migration_phase=phase, **recipients),
                             new_topic, server=phase, endpoint=Endpoint(phase))
        to_new = oslo.client(cli_party.url(rabbit_port, migration_phase=phase,
                                           **recipients), new_topic)
        to_old = oslo.client(cli_party.url(rabbit_port, migration_phase=phase,
                                           recipients=f"{old_topic}:inventory"),
                             old_topic, timeout=3)
        return server, to_new.prepare(server=phase), to_old

    cap_new = broker.capture(f"{new_topic}.send-v2")
    # Phase a: accept v2 and v3, send v2. Old and new call each other.
    _, new_to_new, new_to_old = new_pair("send-v2")
    assert old_client_new.prepare(server="send-v2").call({}, "get", sku=1)["by"] == "send-v2"
    assert new_to_old.call({}, "get", sku=2)["by"] == "old"
    assert new_to_new.call({}, "get", sku=3)["by"] == "send-v2"
    assert all(broker.get(cap_new).startswith(b"{") for _ in range(2))  # v2 on the wire

    # Phase b: accept both, send v3. The old service still reaches the new one (its v2
    # request is accepted and answered in v2); new services talk v3.
    cap_b = broker.capture(f"{new_topic}.send-v3")
    _, new_to_new, new_to_old = new_pair("send-v3")
    assert old_client_new.prepare(server="send-v3").call({}, "get", sku=4)["by"] == "send-v3"
    assert new_to_new.call({}, "get", sku=5)["by"] == "send-v3"
    assert old_client_new.prepare(server="send-v3").call({}, "get", sku=6)["by"] == "send-v3"
    raws = [broker.get(cap_b) for _ in range(3)]
    assert sum(r.startswith(b"{") for r in raws) == 2  # the old client's two v2 calls
    assert rpcseal.inspect(next(r for r in raws if not r.startswith(b"{")))["version"] == 3
    # Why phase b waits until every service runs phase a: an old service cannot read v3.
    with pytest.raises(om.MessagingTimeout):
        new_to_old.call({}, "get", sku=7)

    # Phase c: v3 only. v2 is rejected (downgrade protection); v3 still works.
    _, new_to_new, _ = new_pair("v3-only")
    assert new_to_new.call({}, "get", sku=8)["by"] == "v3-only"
    with pytest.raises(om.MessagingTimeout):
        old_client_new.prepare(server="v3-only").call({}, "get", sku=9)
    assert old_server.count(("get", 7)) == 0


def test_an_unreachable_broker_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        conftest.require(conftest.reachable("127.0.0.1", 1), "RabbitMQ is unreachable")


def test_the_readme_deployer_configuration_works(tmp_path, rabbit_port):
    """The README's [rpcseal] example, loaded by oslo.config, carries a call."""
    import configparser

    from conftest import ROOT

    text = (ROOT / "README.md").read_text()
    section = text[text.index("### oslo.messaging"):]
    ini = section[section.index("```ini\n") + 7:]
    ini = ini[:ini.index("```")]
    service, client = rpcseal.Identity.generate(), rpcseal.Identity.generate()
    for name, ident in (("service", service), ("client", client)):
        (tmp_path / f"{name}.key").write_text(ident.to_secret_string() + "\n")
    (tmp_path / "keyring").write_text(
        f"trust nova-conductor {service.public()}\ntrust nova-compute {client.public()}\n"
        f"trust ceilometer {rpcseal.Identity.generate().public()}\n")
    redis = __import__("os").environ.get("RPCSEAL_TEST_REDIS_URL", "")
    ini = (ini.replace("/etc/nova/rpcseal.keyring", str(tmp_path / "keyring"))
              .replace("nova:SECRET@rabbit1:5672", f"guest:guest@127.0.0.1:{rabbit_port}")
              .replace("redis://127.0.0.1:6379/0", redis or "memory"))
    parser = configparser.ConfigParser()
    parser.read_string(ini)
    url = parser["DEFAULT"]["transport_url"]
    opts = {o.dest: o for o in rpcseal.oslo.rpcseal_opts}
    options = dict(parser["rpcseal"])
    options.pop("transport_url", None)  # DEFAULT leaks into every section
    for name, value in options.items():
        assert name in opts, f"README sets an unknown option [rpcseal] {name}"
        opts[name].type(value)  # each value parses as its option's type
    if options.get("replay_store", "").startswith("redis"):
        options["replay_store"] = "memory"  # a fresh key prefix would fail closed for 5 min
    topic = "conductor"

    def url_as(who):
        q = dict(options, identity_file=str(tmp_path / f"{who}.key"))
        return url + "?" + urllib.parse.urlencode(q)

    servers = Servers()
    try:
        servers.server(url_as("service"), topic, "c1", Endpoint("conductor"))
        c = servers.client(url_as("client"), topic)
        assert c.call({}, "get", sku=3)["by"] == "conductor"
    finally:
        servers.stop()
