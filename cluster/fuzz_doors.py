#!/usr/bin/env python3
"""Fuzzes the coordinator's doors (HTTP and nng) field by field and under load; prints one JSON
object. Run through cluster/fuzz-doors.sh, which starts a 2-worker loopback cluster first.
Standard library only: nng's req0 wire format is spoken over a plain TCP socket."""
import http.client, itertools, json, multiprocessing, os, random, socket, struct, subprocess, sys, threading, time

HTTP = ("127.0.0.1", 7780)
NNG = ("127.0.0.1", 7700)
FIELDS = ["prompt", "raw", "policy", "gen_length", "block_length", "steps", "cache", "eotp", "eotp_gate", "threshold",
          "factor", "tau", "temperature", "seed", "stream", "max_tokens", "messages"]
VALUES = ["0", "-1", "1", "2", "31", "32", "33", "1.5", "0.5", "1e30", "-1e30", "1e39", "-1e39", "1e-50", "1e308",
          "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551615",
          "18446744073709551616", '"NaN"', '"Infinity"', '"-Infinity"', "true", "false", "null", '""', '"x"',
          '"baseline"', '"learn2pd+eotp"', '"dual"', "[]", "{}", "[1]", '[{"role":"user","content":"hi"}]',
          '"' + "a" * (1 << 20) + '"', '"\\u0000"', '"\\ud800"']
BASE = {"prompt": '"What is 1 + 2?"', "policy": '"threshold"', "gen_length": "32", "block_length": "32", "cache": '"dual"'}


def body(overrides):
    pairs = dict(BASE)
    pairs.update(overrides)
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in pairs.items()) + "}").encode()


def http_request(method, path, payload=b"", timeout=60):
    connection = http.client.HTTPConnection(*HTTP, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class NNGClient:
    """req0 over TCP: an 8-byte SP handshake, then 64-bit length-prefixed messages whose body
    starts with a 32-bit request id (high bit set)."""

    def __init__(self, timeout=60):
        self.sock = socket.create_connection(NNG, timeout=timeout)
        self.sock.sendall(b"\x00SP\x00\x00\x30\x00\x00")
        self._exactly(8)
        self.next_id = 0x80000000 | random.randrange(1 << 30)

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def request(self, payload):
        self.next_id = 0x80000000 | ((self.next_id + 1) & 0x7FFFFFFF)
        message = struct.pack(">I", self.next_id) + payload
        self.sock.sendall(struct.pack(">Q", len(message)) + message)
        while True:
            (length,) = struct.unpack(">Q", self._exactly(8))
            reply = self._exactly(length)
            if struct.unpack(">I", reply[:4])[0] == self.next_id:
                return reply[4:]

    def close(self):
        self.sock.close()


def coordinator_pid():
    out = subprocess.run(["pgrep", "-f", "l2pd coordinator"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def healthy():
    try:
        status, _ = http_request("GET", "/health", timeout=10)
        return status == 200
    except OSError:
        return False


def is_json(data):
    try:
        json.loads(data)
        return True
    except ValueError:
        return False


def fuzz(report, pairs):
    nng = NNGClient()
    cases = [(f, v) for f in FIELDS for v in VALUES]
    cases += [dict(zip(fields, values)) for fields, values in
              ((random.sample(FIELDS, 2), random.sample(VALUES, 2)) for _ in range(pairs))]
    for case in cases:
        overrides = {case[0]: case[1]} if isinstance(case, tuple) else case
        payload = body(overrides)
        for door in ("completions", "chat", "nng"):
            report["cases"] += 1
            try:
                if door == "nng":
                    reply = nng.request(payload)
                    if not is_json(reply):
                        report["non_json_errors"] += 1
                else:
                    if door == "chat":
                        chat = dict(overrides)
                        chat.setdefault("messages", '[{"role": "user", "content": "What is 1 + 2?"}]')
                        chat_body = body(chat).replace(b'"prompt": "What is 1 + 2?", ', b"")
                        status, data = http_request("POST", "/v1/chat/completions", chat_body)
                    else:
                        status, data = http_request("POST", "/v1/completions", payload)
                    if status >= 500:
                        report["server_errors"] += 1
                    if status != 200 and not is_json(data):
                        report["non_json_errors"] += 1
            except socket.timeout:
                report["hangs"] += 1
                nng = NNGClient()
            except OSError:
                if coordinator_pid() is None:
                    report["crashes"] += 1
                    return
                nng = NNGClient()
        if report["cases"] % 300 == 0:
            print(f"fuzz-doors: {report['cases']} cases", file=sys.stderr)
    nng.close()
    # Protocol-level cases: methods, paths, bodies that are not JSON.
    for method, path, payload in [("PUT", "/v1/completions", b"{}"), ("GET", "/nowhere", b""), ("POST", "/health", b"x"),
                                  ("POST", "/v1/completions", b"\xff\xfe"), ("POST", "/v1/completions", b"[" * 5000),
                                  ("POST", "/v1/completions", b'{"prompt": "x"' ), ("DELETE", "/metrics", b"")]:
        report["cases"] += 1
        status, data = http_request(method, path, payload)
        if status != 200 and not is_json(data):
            report["non_json_errors"] += 1
    if not healthy():
        report["crashes"] += 1


def timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def large_prompts(report, size=1 << 20, key="large_prompts"):
    big = json.dumps({"prompt": " ".join(["12345"] * (size // 6))}).encode()
    small = body({})
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(http_request("POST", "/v1/completions", big)[0]))
               for _ in range(16)]
    for t in threads:
        t.start()
    (small_status, _), small_seconds = timed(lambda: http_request("POST", "/v1/completions", small))
    health_ok, health_seconds = timed(healthy)
    for t in threads:
        t.join()
    report[key] = {"clients": 16, "bytes": len(big), "statuses": sorted(set(statuses)),
                               "small_request_status": small_status, "small_request_seconds": round(small_seconds, 3),
                               "health_ok": health_ok, "health_seconds": round(health_seconds, 3)}


def hold_idle(count, ready, release):
    held = []
    for _ in range(count):
        try:
            held.append(socket.create_connection(HTTP, timeout=10))
        except OSError:
            break
    ready.put(len(held))
    release.wait()


def idle_connections(report, total):
    ready, release = multiprocessing.Queue(), multiprocessing.Event()
    per = 10000
    workers = [multiprocessing.Process(target=hold_idle, args=(min(per, total - i), ready, release))
               for i in range(0, total, per)]
    for w in workers:
        w.start()
    opened = sum(ready.get() for _ in workers)
    health_ok, health_seconds = timed(healthy)
    (status, _), request_seconds = timed(lambda: http_request("POST", "/v1/completions", body({})))
    release.set()
    for w in workers:
        w.join()
    report["idle_connections"] = {"opened": opened, "health_ok": health_ok, "health_seconds": round(health_seconds, 3),
                                  "request_status": status, "request_seconds": round(request_seconds, 3)}


def LOAD_BODY(n):
    """A typical request: chat format, gen length 256, threshold policy, dual cache."""
    return json.dumps({"messages": [{"role": "user", "content": f"What is {n} + 27?"}], "policy": "threshold",
                       "cache": "dual", "gen_length": 256}).encode()


def load(report, requests, concurrency):
    pid = coordinator_pid()
    for n in range(50):
        http_request("POST", "/v1/chat/completions", LOAD_BODY(n))
    before = rss_mib(pid)
    failures = []
    counter = itertools.count()

    def client():
        while next(counter) < requests:
            try:
                status, _ = http_request("POST", "/v1/chat/completions", LOAD_BODY(random.randrange(99)))
                if status != 200:
                    failures.append(status)
            except OSError as error:
                failures.append(str(error))

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    _, seconds = timed(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
    after = rss_mib(pid)
    report["load"] = {"requests": requests, "concurrency": concurrency, "failures": len(failures), "seconds": round(seconds, 1),
                      "rss_mib_before": round(before, 1), "rss_mib_after": round(after, 1),
                      "rss_growth": round(after / before - 1, 3) if before else None}


def main():
    random.seed(int(os.environ.get("FUZZ_SEED", "1")))
    out = sys.argv[1] if len(sys.argv) > 1 else None
    pairs = int(os.environ.get("FUZZ_PAIRS", "300"))
    report = {"cases": 0, "crashes": 0, "hangs": 0, "non_json_errors": 0, "server_errors": 0}
    fuzz(report, pairs)
    print("fuzz-doors: field fuzz done; large prompts", file=sys.stderr)
    large_prompts(report)
    # Just under the prompt limit: these are tokenized (off the decoding slots) before the
    # context check refuses them.
    large_prompts(report, size=60 << 10, key="prompts_at_limit")
    print("fuzz-doors: idle connections", file=sys.stderr)
    idle_connections(report, int(os.environ.get("FUZZ_IDLE", "20000")))
    print("fuzz-doors: load", file=sys.stderr)
    load(report, int(os.environ.get("FUZZ_REQUESTS", "1000")), 16)
    if not healthy():
        report["crashes"] += 1
    text = json.dumps(report, sort_keys=True)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
