"""Loopback benchmark: oslo.messaging RPC calls through RabbitMQ, plain rabbit driver vs
the rpcseal driver (MAC and signed modes). Not part of .ci/run.

    python python/bench/oslo_bench.py --port 25682 [--calls 2000] [--threads 4] [--json]

Bounded: every run stops after --calls calls or --seconds seconds, whichever comes first,
and talks only to 127.0.0.1. The RPC server and the client run in this one process (the
threading executor), as in the tests; each call carries a ~200-byte argument and returns a
small dict. Reports calls per second (all threads) and the median (p50) and p99 latency of
one call.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import oslo_messaging as om
    from oslo_config import cfg

import rpcseal

CONF = cfg.CONF


class Endpoint:
    def get(self, ctxt, sku, note):
        return {"sku": sku, "count": 7}


def keys(tmp):
    service, client = rpcseal.Identity.generate(), rpcseal.Identity.generate()
    for name, ident in (("service", service), ("client", client)):
        path = os.path.join(tmp, f"{name}.key")
        with open(path, "w") as f:
            f.write(ident.to_secret_string() + "\n")
        os.chmod(path, 0o600)
    ring = os.path.join(tmp, "keyring")
    with open(ring, "w") as f:
        f.write(f"trust service {service.public()}\ntrust client {client.public()}\n")
    return ring


def url_for(driver, port, tmp, ring, who, topic):
    if driver == "plain":
        return f"rabbit://guest:guest@127.0.0.1:{port}/"
    q = {"identity_file": os.path.join(tmp, f"{who}.key"), "keyring": ring,
         "rpc_mode": driver, "recipients": f"{topic}:service"}
    return f"rpcseal+rabbit://guest:guest@127.0.0.1:{port}/?" + urllib.parse.urlencode(q)


def run(driver, port, tmp, ring, calls, threads, seconds):
    topic = f"bench-{driver}-{uuid.uuid4().hex[:6]}"
    st = om.get_rpc_transport(CONF, url=url_for(driver, port, tmp, ring, "service", topic))
    server = om.get_rpc_server(st, om.Target(topic=topic, server="s1"), [Endpoint()],
                               executor="threading")
    server.start()
    ct = om.get_rpc_transport(CONF, url=url_for(driver, port, tmp, ring, "client", topic))
    client = om.get_rpc_client(ct, om.Target(topic=topic), timeout=30)
    note = "x" * 200
    for i in range(50):  # warm-up: queues declared, sessions established
        client.call({}, "get", sku=i, note=note)
    latencies = []
    lock = threading.Lock()
    remaining = [calls]
    deadline = time.monotonic() + seconds

    def worker():
        mine = []
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            t0 = time.perf_counter()
            client.call({}, "get", sku=1, note=note)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - start
    server.stop()
    server.wait()
    st.cleanup()
    ct.cleanup()
    latencies.sort()
    return {
        "driver": driver,
        "calls": len(latencies),
        "calls_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int,
                    default=int(os.environ.get("RPCSEAL_TEST_AMQP_PORT", "5672")))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        CONF([], project="rpcseal-bench")
    except cfg.Error:
        pass
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ring = keys(tmp)
        for driver in ("plain", "mac", "signed"):
            results.append(run(driver, args.port, tmp, ring, args.calls, args.threads,
                               args.seconds))
    plain = results[0]
    print(f"{'driver':<24}{'calls':>7}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'vs plain':>10}")
    for r in results:
        name = "rabbit" if r["driver"] == "plain" else f"rpcseal+rabbit {r['driver']}"
        print(f"{name:<24}{r['calls']:>7}{r['calls_per_s']:>10}{r['p50_ms']:>9}"
              f"{r['p99_ms']:>9}{r['calls_per_s'] / plain['calls_per_s']:>9.2f}x")
    if args.json:
        print(json.dumps({"threads": args.threads, "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
