"""Interoperability: the server as third-party gRPC clients see it.

Python grpcio learns the schema only through server reflection (no .proto,
no generated code), and grpcurl calls the service with the JSON request
files of examples/requests, with reflection and with --proto. Run by
scripts/test.sh; needs MNIST_SERVER_BIN and the venv's grpcio and grpcurl.
"""
import base64
import gzip
import json
import os
import pathlib
import signal
import subprocess
import sys
import unittest

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("MNIST_SERVER_BIN", str(ROOT / "target/debug/mnist-server"))
MNIST_DIR = pathlib.Path(os.environ.get("MNIST_DIR", ROOT / "data/mnist"))


def load_test_images(n):
    raw = gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz").read()
    labels = gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read()
    return [raw[16 + i * 784 : 16 + (i + 1) * 784] for i in range(n)], list(labels[8 : 8 + n])


class Server:
    def __init__(self):
        self.process = subprocess.Popen(
            [SERVER_BIN, "--addr", "127.0.0.1:0", "--log-format", "json", "--model", str(ROOT / "models/mnist.onnx")],
            stderr=subprocess.PIPE, text=True,
        )
        self.addr = None
        for line in self.process.stderr:
            fields = json.loads(line).get("fields", {})
            if fields.get("message") == "listening":
                self.addr = fields["addr"]
            if fields.get("message", "").startswith("ready"):
                break
        if self.addr is None:
            raise RuntimeError("server did not start")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process.stderr.close()
        return code


class InteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.channel = grpc.insecure_channel(cls.server.addr)
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(cls.channel))
        cls.Request = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.PredictRequest"))
        cls.Response = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.PredictResponse"))
        cls.images, cls.labels = load_test_images(200)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        assert code == 0, f"server exited {code} after SIGTERM"

    def call(self, kind, method):
        factory = getattr(self.channel, kind)
        return factory(f"/mnist.v1.Classifier/{method}", request_serializer=self.Request.SerializeToString,
                       response_deserializer=self.Response.FromString)

    def test_health_is_serving(self):
        stub = health_pb2_grpc.HealthStub(self.channel)
        for service in ["", "mnist.v1.Classifier"]:
            status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
            self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING)

    def test_stream_through_grpcio_by_reflection(self):
        requests = (self.Request(id=str(i), pixels=img) for i, img in enumerate(self.images))
        responses = list(self.call("stream_stream", "Predict")(requests))
        self.assertEqual([r.id for r in responses], [str(i) for i in range(len(self.images))])
        correct = sum(r.digit == label for r, label in zip(responses, self.labels))
        self.assertGreaterEqual(correct / len(self.labels), 0.99)

    def test_unary_errors_are_status_codes(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call("unary_unary", "PredictOne")(self.Request(id="short", pixels=b"\x00" * 10))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("784", caught.exception.details())

    def test_deadline_exceeded(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call("unary_unary", "PredictOne")(self.Request(id="late", pixels=self.images[0]), timeout=1e-6)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        reply = self.call("unary_unary", "PredictOne")(self.Request(id="ok", pixels=self.images[0]), timeout=10)
        self.assertEqual(reply.digit, self.labels[0])

    def grpcurl(self, *args, data_file=None):
        cmd = ["grpcurl", "-plaintext", "-emit-defaults"]
        if data_file:
            cmd += ["-d", "@"]
        cmd += [*args]
        data = pathlib.Path(data_file).read_text() if data_file else None
        out = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_grpcurl_lists_and_calls_by_reflection(self):
        services = self.grpcurl(self.server.addr, "list").split()
        self.assertIn("mnist.v1.Classifier", services)
        self.assertIn("grpc.health.v1.Health", services)
        requests = ROOT / "examples/requests"
        expected = json.loads((requests / "pixels.json").read_text())["id"].split("-")[1]
        for name in ["pixels.json", "png.json"]:
            reply = json.loads(self.grpcurl(self.server.addr, "mnist.v1.Classifier/PredictOne", data_file=requests / name))
            self.assertEqual(str(reply["digit"]), expected, name)
        stream = self.grpcurl(self.server.addr, "mnist.v1.Classifier/Predict", data_file=requests / "stream-grpcurl.json")
        replies = [json.loads(block) for block in stream.replace("}\n{", "}\x00{").split("\x00")]
        self.assertEqual(len(replies), 10)
        self.assertEqual([r["digit"] for r in replies], self.labels[:10])

    def test_grpcurl_with_the_proto_file(self):
        out = self.grpcurl("-import-path", str(ROOT / "proto"), "-proto", "mnist/v1/classifier.proto",
                           self.server.addr, "mnist.v1.Classifier/GetModelInfo")
        info = json.loads(out)
        self.assertEqual(info["executionProvider"], "cpu")
        self.assertGreaterEqual(info["testAccuracy"], 0.992)


if __name__ == "__main__":
    unittest.main(verbosity=2)
