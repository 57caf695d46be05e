#!/usr/bin/env python3
"""Drives batchbus-webstore as its users would, on loopback, bounded in time.

  check_webstore.py --webstore BIN [--processor BIN] [--brokers URL]
                    [--seconds S] [--screenshot PNG] [--report JSON]

With --processor (payments_processor) the webstore submits to a processor in
another process through the broker (--brokers kafka://...); without it the
webstore serves the jobs itself (--with-local-processor, e.g. on mock://).

1. curl: a payment answered within the request (200, its trace context
   echoed), a declined one (422), bad JSON (400), a background job (202,
   then GET /api/jobs/{id} until it ended), an unknown id (404), and
   /metrics (checked with promtool when it is installed).
2. wrk: after a 2 s warm-up of each, the same closed-loop load on
   POST /api/payment as realtime jobs and as normal jobs; every answer must
   be 2xx. Prints requests/s and latency
   percentiles side by side.
3. Headless Chromium loads the dashboard while load runs; the page must show
   non-zero throughput (its body's data-throughput), and --screenshot saves
   what it shows.
Exit status 0 when everything held; each failure is printed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curl(url, *args, timeout=60):
    """(status, headers, body) of one request made with curl."""
    out = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", str(timeout), *args, url],
        capture_output=True, timeout=timeout + 10)
    if out.returncode != 0:
        return 0, {}, out.stderr.decode(errors="replace")
    # Bytes, not text: text mode would turn the CRLFs that end the head
    # into plain newlines.
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def wait_listening(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/stats", timeout=2):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def wrk_command(url, seconds, connections):
    return ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", os.path.join(HERE, "payment.lua"), url]


def parse_wrk(text):
    """Requests/s, latency percentiles and errors from wrk's report."""
    result = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    result["requests_per_s"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", text)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            result[f"p{pct}_ms"] = float(m.group(1)) * scale
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    result["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    result["socket_errors"] = m.group(1) if m else ""
    m = re.search(r"(\d+) requests in", text)
    result["requests"] = int(m.group(1)) if m else 0
    return result


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def browse(url, extra, seconds=60):
    """Runs headless Chromium on `url`; its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               "--virtual-time-budget=4000", "--window-size=1200,900",
               *extra, url]
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=seconds)
        return out.stdout


def curl_checks(base):
    status, headers, body = curl(
        base + "/api/payment", "-X", "POST", "-H",
        f"traceparent: {TRACEPARENT}", "-d",
        '{"payment_id":"curl-1","amount_cents":1299,"currency":"EUR"}')
    check(status == 200, f"POST /api/payment answers 200 ({status} {body[:200]})")
    if status == 200:
        r = json.loads(body)
        check(r["status"] == "PROCESSED_OK" and r["priority"] == "realtime"
              and r["data"]["status"] == "captured",
              "the payment's result comes back within the request")
        check(headers.get("traceparent", "").split("-")[1] ==
              TRACEPARENT.split("-")[1],
              "the trace id of the incoming traceparent comes back")

    status, _, body = curl(base + "/api/payment", "-X", "POST", "-d",
                           '{"payment_id":"curl-2","amount_cents":-5}')
    check(status == 422 and "declined" in body,
          f"a declined payment answers 422 with the reason ({status} {body[:120]})")

    status, _, body = curl(base + "/api/payment", "-X", "POST", "-d", "nope")
    check(status == 400 and "JSON" in body,
          f"bad JSON answers 400 and says why ({status} {body[:120]})")

    status, _, body = curl(base + "/api/payment?priority=urgent", "-X", "POST",
                           "-d", "{}")
    check(status == 400, f"an unknown priority answers 400 ({status})")

    status, headers, body = curl(
        base + "/api/jobs?priority=slow", "-X", "POST", "-d",
        '{"payment_id":"curl-3","amount_cents":42}')
    check(status == 202, f"POST /api/jobs answers 202 ({status} {body[:120]})")
    if status == 202:
        job = json.loads(body)
        check(headers.get("location") == "/api/jobs/" + job["id"],
              "its Location names the status URL")
        state = {}
        deadline = time.time() + 60
        while time.time() < deadline:
            s, _, b = curl(base + job["status_url"])
            state = json.loads(b) if s == 200 else {}
            if state.get("phase") == "ended":
                break
            time.sleep(0.1)
        check(state.get("phase") == "ended" and
              state["result"]["status"] == "PROCESSED_OK" and
              state["result"]["priority"] == "slow",
              f"GET /api/jobs/{{id}} shows it ended PROCESSED_OK ({state})")

    status, _, _ = curl(base + "/api/jobs/" + "0" * 32)
    check(status == 404, f"an unknown job id answers 404 ({status})")
    status, _, _ = curl(base + "/api/jobs/xyz")
    check(status == 400, f"a malformed job id answers 400 ({status})")

    status, headers, body = curl(base + "/metrics")
    check(status == 200 and "batchbus_submitter_processed_ok_total" in body,
          "GET /metrics serves the submitter's metrics")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "promtool accepts /metrics " + p.stderr[:300])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--webstore", required=True)
    ap.add_argument("--processor")
    ap.add_argument("--brokers")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--screenshot")
    ap.add_argument("--report")
    args = ap.parse_args()

    for tool in ("curl", "wrk"):
        if not shutil.which(tool):
            print(f"FAIL  {tool} is not installed (scripts/setup installs it)")
            return 1

    env = dict(os.environ)
    namespace = f"webstore{os.getpid()}"
    env["BATCHBUS_NAMESPACE"] = namespace
    if args.processor and not args.brokers:
        # The kafka tier's broker (tests/support/test_cluster.h does the same).
        args.brokers = os.environ.get(
            "BATCHBUS_TEST_BROKERS",
            "kafka://127.0.0.1:" + os.environ.get("BATCHBUS_KAFKA_PORT", "9092"))
    if args.brokers:
        env["BATCHBUS_BROKERS"] = args.brokers
    logs = tempfile.mkdtemp(prefix="batchbus-webstore-")
    children = []

    def start(cmd, name):
        log = open(os.path.join(logs, name + ".log"), "w")
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        children.append((p, name))
        return p

    port = free_port()
    try:
        if args.processor:
            start([args.processor], "processor")
        cmd = [args.webstore, "--port", str(port)]
        if not args.processor:
            cmd.append("--with-local-processor")
        store = start(cmd, "webstore")
        if not check(wait_listening(port, store), "the webstore listens"):
            return 1
        base = f"http://127.0.0.1:{port}"
        curl_checks(base)

        report = {"connections": args.connections, "seconds": args.seconds,
                  "brokers": args.brokers or "mock://",
                  "processor": "separate process" if args.processor
                               else "in the webstore"}
        # Warm-up, not measured: consumer groups settled, connections and
        # leaders known, for both priorities.
        for query in ("", "?priority=normal"):
            subprocess.run(wrk_command(base + "/api/payment" + query, 2,
                                       args.connections),
                           capture_output=True, timeout=120)
        for name, query in (("realtime", ""), ("normal", "?priority=normal")):
            load = subprocess.Popen(
                wrk_command(base + "/api/payment" + query, args.seconds,
                            args.connections),
                stdout=subprocess.PIPE, text=True)
            if name == "realtime" and chromium():
                # The dashboard is loaded while this load runs.
                time.sleep(min(3, args.seconds / 3))
                dom = browse(base + "/", ["--dump-dom"])
                m = re.search(r'<body[^>]*data-throughput="(\d+)"', dom)
                shown = int(m.group(1)) if m else 0
                check(shown > 0, f"the dashboard shows non-zero throughput "
                                 f"under load (data-throughput={shown})")
                check('data-series="realtime.jobs"' in dom,
                      "the dashboard draws the realtime series")
                report["dashboard_throughput"] = shown
                if args.screenshot:
                    browse(base + "/", [f"--screenshot={args.screenshot}"])
                    check(os.path.exists(args.screenshot) and
                          os.path.getsize(args.screenshot) > 10000,
                          f"the screenshot is saved to {args.screenshot}")
            out, _ = load.communicate(timeout=args.seconds + 120)
            result = parse_wrk(out)
            report[name] = result
            check(result["requests"] > 0 and result["non_2xx"] == 0 and
                  not result["socket_errors"],
                  f"{name}: {result['requests']} requests, all answered 2xx "
                  f"({result['non_2xx']} not; socket errors "
                  f"'{result['socket_errors']}')")

        status, _, body = curl(base + "/api/stats")
        stats = json.loads(body) if status == 200 else {}
        check(stats.get("processed_ok", 0) >=
              report["realtime"]["requests"] + report["normal"]["requests"]
              - 2 * args.connections,  # wrk does not count cut-off requests.
              "every request's job is counted PROCESSED_OK by the submitter")
        check(stats.get("batch_failed", 1) == 0,
              f"no job ended BATCH_FAILED ({stats.get('batch_failed')})")

        print()
        print(f"| POST /api/payment, {args.connections} connections, "
              f"{args.seconds} s | requests/s | p50 ms | p90 ms | p99 ms |")
        print("| --- | --- | --- | --- | --- |")
        for name in ("realtime", "normal"):
            r = report[name]
            print(f"| as {name} jobs | {r['requests_per_s']:.0f} | "
                  f"{r.get('p50_ms', 0):.1f} | {r.get('p90_ms', 0):.1f} | "
                  f"{r.get('p99_ms', 0):.1f} |")
        if args.report:
            with open(args.report, "w") as f:
                json.dump(report, f, indent=2)
    finally:
        for p, name in reversed(children):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
                    failures.append(f"{name} did not stop within 30 s of SIGTERM")
            if p.returncode not in (0, None):
                failures.append(f"{name} exited {p.returncode}")
        if failures:
            for p, name in children:
                path = os.path.join(logs, name + ".log")
                print(f"--- {name} log (last 20 lines)")
                with open(path) as f:
                    print("".join(f.readlines()[-20:]))
        shutil.rmtree(logs, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
