"""Interoperability: the server as third-party gRPC clients see it.

Python grpcio learns the schema only through server reflection (no .proto,
no generated code), and grpcurl calls the service with the JSON request
files of examples/requests, with reflection and with --proto; ghz runs the
README's load-test commands (short). A second server with TLS and a bearer
token must refuse all three clients without them.
Run by scripts/test.sh; needs MNIST_SERVER_BIN, MNIST_DEV_CERTS_BIN (the
dev_certs example) and the venv's grpcio and grpcurl. ghz is taken from
$GHZ, else ../shared/tools/ghz; its tests skip, saying so, when it is missing.
"""
import json
import tempfile
import unittest

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from common import (GHZ, MNIST_PROTO, NO_GHZ, ROOT, Server, credentials, load_test_images, run_ghz, run_grpcurl,
                    stop_server)


class InteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.addClassCleanup(stop_server, cls.server)
        cls.channel = grpc.insecure_channel(cls.server.addr)
        cls.addClassCleanup(cls.channel.close)
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(cls.channel))
        cls.Request = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.PredictRequest"))
        cls.Response = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.PredictResponse"))
        cls.images, cls.labels = load_test_images(200)

    def call(self, kind, method):
        factory = getattr(self.channel, kind)
        return factory(f"/mnist.v1.Classifier/{method}", request_serializer=self.Request.SerializeToString,
                       response_deserializer=self.Response.FromString)

    def test_health_is_serving(self):
        stub = health_pb2_grpc.HealthStub(self.channel)
        for service in ["", "mnist.v1.Classifier", "inference.GRPCInferenceService"]:
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
        out = run_grpcurl("-plaintext", *args, data_file=data_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_grpcurl_lists_and_calls_by_reflection(self):
        services = self.grpcurl(self.server.addr, "list").split()
        self.assertIn("mnist.v1.Classifier", services)
        self.assertIn("grpc.health.v1.Health", services)
        self.assertIn("inference.GRPCInferenceService", services)
        requests = ROOT / "examples/requests"
        expected = json.loads((requests / "pixels.json").read_text())["id"].split("-")[1]
        for name in ["pixels.json", "png.json"]:
            reply = json.loads(self.grpcurl(self.server.addr, "mnist.v1.Classifier/PredictOne", data_file=requests / name))
            self.assertEqual(str(reply["digit"]), expected, name)
        stream = self.grpcurl(self.server.addr, "mnist.v1.Classifier/Predict", data_file=requests / "stream-grpcurl.json")
        replies = [json.loads(block) for block in stream.replace("}\n{", "}\x00{").split("\x00")]
        self.assertEqual(len(replies), 10)
        self.assertEqual([r["digit"] for r in replies], self.labels[:10])

    def test_grpcurl_readme_commands_for_several_models(self):
        server = Server("--model", str(ROOT / "models/mnist.onnx"), "--model", str(ROOT / "models/mnist-int8.onnx"))
        try:
            requests = ROOT / "examples/requests"
            reply = json.loads(self.grpcurl(server.addr, "mnist.v1.Classifier/PredictOne",
                                            data_file=requests / "pixels-int8.json"))
            self.assertEqual(reply["modelName"], "mnist-int8")
            self.assertEqual(str(reply["digit"]), json.loads((requests / "pixels.json").read_text())["id"].split("-")[1])
            listed = json.loads(self.grpcurl(server.addr, "mnist.v1.Classifier/ListModels"))
            self.assertEqual([m["name"] for m in listed["models"]], ["mnist", "mnist-int8"])
            self.assertTrue(listed["models"][0]["isDefault"])
        finally:
            stop_server(server)

    def test_numbers_through_grpcio_grpcurl_and_ghz(self):
        """ReadOne and Read as other people's clients call them, on the README's sample photos."""
        server = Server("--model-repository", str(ROOT / "models"), "--default-model", "mnist")
        try:
            channel = grpc.insecure_channel(server.addr)
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            ReadRequest = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.ReadRequest"))
            ReadResponse = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.ReadResponse"))
            read_one = channel.unary_unary("/mnist.v1.Classifier/ReadOne", request_serializer=ReadRequest.SerializeToString,
                                           response_deserializer=ReadResponse.FromString)
            read = channel.stream_stream("/mnist.v1.Classifier/Read", request_serializer=ReadRequest.SerializeToString,
                                         response_deserializer=ReadResponse.FromString)
            photos = sorted((ROOT / "examples/numbers").glob("*.jpg"))
            self.assertGreaterEqual(len(photos), 3)
            # The widely spaced and the normal ones are read exactly (they are named after their digits).
            for photo in photos:
                reply = read_one(ReadRequest(id=photo.name, image=photo.read_bytes(), top_k=2), timeout=30)
                self.assertEqual(reply.model_name, "mnist-reader")
                self.assertEqual(len(reply.text), len(reply.digits))
                self.assertTrue(all(len(d.top_k) == 2 and d.box.width > 0 for d in reply.digits))
                if photo.stem.startswith(("amount", "meter")):
                    self.assertEqual(reply.text, photo.stem.rsplit("-", 1)[1], photo.name)
            replies = list(read(ReadRequest(id=p.name, image=p.read_bytes()) for p in photos))
            self.assertEqual([r.id for r in replies], [p.name for p in photos])
            with self.assertRaises(grpc.RpcError) as caught:
                read_one(ReadRequest(id="junk", image=b"not an image"), timeout=30)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            channel.close()

            requests = ROOT / "examples/requests"
            reply = json.loads(self.grpcurl(server.addr, "mnist.v1.Classifier/ReadOne", data_file=requests / "read.json"))
            expected = json.loads((requests / "read.json").read_text())["id"].rsplit("-", 1)[1]
            self.assertEqual(reply["text"], expected)
            self.assertEqual(len(reply["digits"]), len(expected))
            if GHZ.exists():
                codes, report = run_ghz("--insecure", "--call", "mnist.v1.Classifier.ReadOne", "-D",
                                        str(requests / "read.json"), "-c", "4", "-n", "40", server.addr)
                self.assertEqual(codes, {"OK": 40}, report.get("errorDistribution"))
        finally:
            stop_server(server)

    def test_grpcurl_with_the_proto_file(self):
        out = self.grpcurl("-import-path", str(ROOT / "proto"), "-proto", "mnist/v1/classifier.proto",
                           self.server.addr, "mnist.v1.Classifier/GetModelInfo")
        info = json.loads(out)
        self.assertEqual(info["executionProvider"], "cpu")
        self.assertGreaterEqual(info["testAccuracy"], 0.992)

    @unittest.skipUnless(GHZ.exists(), NO_GHZ)
    def test_ghz_readme_commands(self):
        requests = ROOT / "examples/requests"
        unary = ["--insecure", "--call", "mnist.v1.Classifier.PredictOne"]
        # By reflection, a fixed number of calls.
        codes, _ = run_ghz(*unary, "-D", str(requests / "pixels.json"), "-c", "8", "-n", "400", self.server.addr)
        self.assertEqual(codes, {"OK": 400})
        # From the proto file, for a duration: every call in flight at the end is waited for.
        codes, report = run_ghz(*unary, *MNIST_PROTO, "-D", str(requests / "png.json"), "-c", "8", "-z", "1s",
                                "--duration-stop", "wait", self.server.addr)
        self.assertEqual(list(codes), ["OK"], report.get("errorDistribution"))
        # The bidirectional stream: 10 digits per call.
        codes, _ = run_ghz("--insecure", "--call", "mnist.v1.Classifier.Predict", "-D",
                           str(requests / "stream-ghz.json"), "-c", "4", "-n", "40", self.server.addr)
        self.assertEqual(codes, {"OK": 40})


class SecureServerTest(unittest.TestCase):
    """A server with TLS and a bearer token, as grpcio and grpcurl see it."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.dir.cleanup)
        cls.certs, cls.token, flags = credentials(cls.dir.name)
        cls.server = Server(*flags)
        cls.addClassCleanup(stop_server, cls.server)
        cls.target = "localhost:" + cls.server.addr.rsplit(":", 1)[1]
        cls.tls = grpc.ssl_channel_credentials(root_certificates=(cls.certs / "ca.pem").read_bytes())
        # grpcio sends `authorization: Bearer <token>` with every call, reflection included.
        cls.channel = grpc.secure_channel(
            cls.target, grpc.composite_channel_credentials(cls.tls, grpc.access_token_call_credentials(cls.token)))
        cls.addClassCleanup(cls.channel.close)
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(cls.channel))
        cls.Request = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.PredictRequest"))
        cls.Response = message_factory.GetMessageClass(pool.FindMessageTypeByName("mnist.v1.PredictResponse"))
        cls.images, cls.labels = load_test_images(1)

    def predict_one(self, channel):
        call = channel.unary_unary("/mnist.v1.Classifier/PredictOne",
                                   request_serializer=self.Request.SerializeToString,
                                   response_deserializer=self.Response.FromString)
        return call(self.Request(id="0", pixels=self.images[0]), timeout=10)

    def test_grpcio_with_tls_and_token_is_served(self):
        self.assertEqual(self.predict_one(self.channel).digit, self.labels[0])

    def test_grpcio_without_the_token_is_unauthenticated(self):
        wrong = grpc.composite_channel_credentials(self.tls, grpc.access_token_call_credentials("not-the-token-0123"))
        for credentials in [self.tls, wrong]:
            with grpc.secure_channel(self.target, credentials) as channel:
                with self.assertRaises(grpc.RpcError) as caught:
                    self.predict_one(channel)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
                # Health stays open for probes.
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
                self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING)

    def test_grpcio_without_tls_gets_no_answer(self):
        with grpc.insecure_channel(self.target) as channel:
            with self.assertRaises(grpc.RpcError) as caught:
                self.predict_one(channel)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_grpcurl_needs_the_ca_and_the_token(self):
        png = ROOT / "examples/requests/png.json"
        header = f"authorization: Bearer {self.token}"
        ca = ["-cacert", str(self.certs / "ca.pem")]
        ok = run_grpcurl(*ca, "-H", header, "-reflect-header", header, self.target,
                         "mnist.v1.Classifier/PredictOne", data_file=png)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(json.loads(ok.stdout)["digit"], 7)
        no_token = run_grpcurl(*ca, self.target, "mnist.v1.Classifier/PredictOne", data_file=png)
        self.assertNotEqual(no_token.returncode, 0)
        self.assertIn("Unauthenticated", no_token.stderr)
        plaintext = run_grpcurl("-plaintext", "-H", header, self.target, "list")
        self.assertNotEqual(plaintext.returncode, 0)

    @unittest.skipUnless(GHZ.exists(), NO_GHZ)
    def test_ghz_needs_the_ca_and_the_token(self):
        pixels = str(ROOT / "examples/requests/pixels.json")
        token = json.dumps({"authorization": f"Bearer {self.token}"})
        tls = ["--cacert", str(self.certs / "ca.pem"), "--call", "mnist.v1.Classifier.PredictOne", "-D", pixels]
        codes, _ = run_ghz(*tls, "-m", token, "--reflect-metadata", token, "-c", "4", "-n", "100", self.target)
        self.assertEqual(codes, {"OK": 100})
        codes, _ = run_ghz(*tls, *MNIST_PROTO, "-m", token, "-c", "4", "-n", "100", self.target)
        self.assertEqual(codes, {"OK": 100})
        codes, _ = run_ghz(*tls, *MNIST_PROTO, "-n", "10", self.target)
        self.assertEqual(codes, {"Unauthenticated": 10})


if __name__ == "__main__":
    unittest.main(verbosity=2)
