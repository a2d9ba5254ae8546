"""What both interoperability suites share: where the binaries and the data
are, a server process that reports its ports, and the third-party command
line tools (grpcurl, ghz).

grpcurl is taken from $GRPCURL, else the PATH; ghz from $GHZ, else
../shared/tools/ghz (its tests skip, saying so, when it is missing).
"""
import gzip
import json
import os
import pathlib
import secrets
import signal
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("MNIST_SERVER_BIN", str(ROOT / "target/debug/mnist-server"))
DEV_CERTS_BIN = os.environ.get("MNIST_DEV_CERTS_BIN", str(ROOT / "target/debug/examples/dev_certs"))
MNIST_DIR = pathlib.Path(os.environ.get("MNIST_DIR", ROOT / "data/mnist"))
GHZ = pathlib.Path(os.environ.get("GHZ", ROOT.parent / "shared/tools/ghz"))
NO_GHZ = f"ghz not found at {GHZ} (set GHZ=/path/to/ghz): the ghz interop tests are skipped"
MNIST_PROTO = ["--proto", str(ROOT / "proto/mnist/v1/classifier.proto"), "--import-paths", str(ROOT / "proto")]


def run_ghz(*args):
    """Runs ghz with a JSON report; returns (status code counts, report)."""
    out = subprocess.run([str(GHZ), "-O", "json", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if out.returncode != 0:
        raise AssertionError(f"ghz {' '.join(args)} exited {out.returncode}: {out.stderr}")
    report = json.loads(out.stdout)
    return report.get("statusCodeDistribution") or {}, report


def load_test_images(n):
    raw = gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz").read()
    labels = gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read()
    return [raw[16 + i * 784 : 16 + (i + 1) * 784] for i in range(n)], list(labels[8 : 8 + n])


def credentials(directory):
    """Development certificates and a bearer token in `directory`: returns
    (the directory as a Path, the token, the server flags that use them)."""
    certs = pathlib.Path(directory)
    subprocess.run([DEV_CERTS_BIN, str(certs)], check=True, stdout=subprocess.DEVNULL)
    token = secrets.token_hex(32)
    token_file = certs / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    flags = ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
             "--auth-token-file", str(token_file)]
    return certs, token, flags


class Server:
    """An mnist-server process on ephemeral ports: `addr` is the gRPC port,
    `http_addr` the HTTP port when `--http-addr` is among the flags."""

    def __init__(self, *flags):
        # The shipped model, unless the flags name the models.
        model = [] if {"--model", "--model-repository"} & set(flags) else ["--model", str(ROOT / "models/mnist.onnx")]
        self.process = subprocess.Popen(
            [SERVER_BIN, "--addr", "127.0.0.1:0", "--log-format", "json", *model, *flags],
            stderr=subprocess.PIPE, text=True,
        )
        self.addr = self.http_addr = None
        for line in self.process.stderr:
            fields = json.loads(line).get("fields", {})
            if fields.get("message") == "listening":
                self.addr = fields["addr"]
            if fields.get("message") == "HTTP listening":
                self.http_addr = fields["addr"]
            if fields.get("message", "").startswith("ready"):
                break
        if self.addr is None:
            raise RuntimeError("server did not start")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()  # never leave a server behind
            self.process.wait()
            raise
        finally:
            self.process.stderr.close()
        return code


def stop_server(server):
    """SIGTERM; the server must drain and exit 0. A class cleanup, so that it
    runs even when the rest of setUpClass fails (cleanups run last-added
    first: channels close before the server stops)."""
    code = server.stop()
    assert code == 0, f"server exited {code} after SIGTERM"


def run_grpcurl(*args, data_file=None):
    data = pathlib.Path(data_file).read_text() if data_file else None
    cmd = [os.environ.get("GRPCURL", "grpcurl"), "-emit-defaults", *(["-d", "@"] if data_file else []), *args]
    return subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=60)


def start_secure_server(test_class, *flags):
    """A server with development TLS certificates, a bearer token and the HTTP
    port, for `test_class` (its class cleanups remove them): sets `certs`,
    `token` and `server` on it."""
    import tempfile
    directory = tempfile.TemporaryDirectory()
    test_class.addClassCleanup(directory.cleanup)
    test_class.certs, test_class.token, secure = credentials(directory.name)
    test_class.server = Server(*secure, "--http-addr", "127.0.0.1:0", *flags)
    test_class.addClassCleanup(stop_server, test_class.server)
