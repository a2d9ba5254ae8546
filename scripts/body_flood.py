"""The careless HTTP clients of scripts/bench-body-flood.sh (stdlib only).

  body_flood.py flood HOST:PORT SERVER_PID SECONDS
      200 connections each announce 4 MiB and send one byte short, then
      stall (reopened a second after the server answers or closes them);
      2 clients loop 4 MiB JSON bodies the server refuses. Prints what the server answered and
      its peak RSS during the flood.
  body_flood.py one HOST:PORT SERVER_PID
      One refused 4 MiB JSON body on an idle server that has seen none
      before: the server's RSS before, its peak while answering (sampled
      every 5 ms), and the rise against the body's size.
"""
import collections
import json
import socket
import sys
import threading
import time

FOUR_MIB = 4 * 1024 * 1024


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def refused_json_body():
    """A JSON inference request of about 4 MiB: 6,000 images of 784 zero
    pixels' worth of data, more images than one request may carry."""
    pixels = ",".join(["0"] * (FOUR_MIB // 2 - 200))
    body = ('{"inputs":[{"name":"pixels","shape":[6000,784],"datatype":"UINT8","data":[' + pixels + "]}]}").encode()
    return body[: FOUR_MIB - 100] if len(body) > FOUR_MIB else body


def post(host, port, path, body, timeout=30):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        answer = s.recv(64).decode(errors="replace")
        return answer.split(" ")[1] if " " in answer else "none"


def staller(host, port, until, counts):
    """Announces 4 MiB and sends one byte short, then stalls. Like curl
    with `Expect: 100-continue`, it waits a moment for an early answer
    before uploading: a server refusing at once (429, 413) spares it the
    upload. Careless, not a CPU burner: after each answer or error it waits
    a second before trying again, so that the measure is what the server
    spends, not the flood's own use of the cores."""
    while time.time() < until:
        try:
            with socket.create_connection((host, port), timeout=60) as s:
                s.sendall(f"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Length: {FOUR_MIB}\r\n\r\n".encode())
                s.settimeout(0.2)
                try:
                    answer = s.recv(64).decode(errors="replace")
                    counts["stalled body: answered before the upload: " + answer.split(" ")[1]] += 1
                except (socket.timeout, TimeoutError):
                    s.sendall(b"x" * (FOUR_MIB - 1))
                    s.settimeout(max(0.1, until - time.time()))
                    answer = s.recv(64).decode(errors="replace")
                    counts["stalled body: " + (answer.split(" ")[1] if " " in answer else "closed")] += 1
        except (socket.timeout, TimeoutError):
            counts["stalled body: still open at the end"] += 1
        except OSError as error:
            counts[f"stalled body: {type(error).__name__}"] += 1
        time.sleep(1)


def refuser(host, port, until, body, counts):
    while time.time() < until:
        try:
            counts["4 MiB JSON: " + post(host, port, "/v2/models/mnist/infer", body)] += 1
        except OSError as error:
            counts[f"4 MiB JSON: {type(error).__name__}"] += 1
            time.sleep(0.1)


def main():
    mode, addr, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = addr.rsplit(":", 1)
    port = int(port)
    body = refused_json_body()
    if mode == "flood":
        seconds = float(sys.argv[4])
        until = time.time() + seconds
        counts = collections.Counter()
        threads = [threading.Thread(target=staller, args=(host, port, until, counts), daemon=True) for _ in range(200)]
        threads += [threading.Thread(target=refuser, args=(host, port, until, body, counts), daemon=True)
                    for _ in range(2)]
        before = rss_kib(pid)
        for t in threads:
            t.start()
        peak = before
        while time.time() < until:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.05)
        for t in threads:
            t.join(timeout=5)
        print(f"flood for {seconds:.0f}s: RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB; answers: "
              + json.dumps(dict(counts)))
    else:
        # The first such body the server sees: nothing of an earlier one is
        # left in the allocator's pools to hide its cost.
        before = rss_kib(pid)
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        status = post(host, port, "/v2/models/mnist/infer", body)
        time.sleep(0.2)
        done.set()
        sampler.join()
        rise = (peak[0] - before) / 1024
        print(f"one {len(body) / 2**20:.1f} MiB JSON body answered {status}: RSS {before / 1024:.1f} MiB before, "
              f"peak {peak[0] / 1024:.1f} MiB, rise {rise:.1f} MiB = {rise / (len(body) / 2**20):.2f}x the body")


if __name__ == "__main__":
    main()
