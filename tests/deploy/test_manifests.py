"""The deployment files, checked offline: no cluster runs on these machines.

- Every Kubernetes manifest (deploy/kubernetes, its overlays rendered by the
  small kustomize renderer below, deploy/kserve) validates against the
  Kubernetes API schemas of KUBERNETES_VERSION (PyPI's kubernetes-validate,
  strict: unknown fields are errors). Custom resources (ServiceMonitor,
  InferenceService) have no schema there; their fields that matter are
  checked here.
- What the manifests say agrees with the server itself: every MNIST_*
  variable exists in `mnist-server --help`; ports match the addresses the
  variables give; the probes' gRPC service names are ones a running server
  reports SERVING; the grace period outlasts the preStop pause plus the
  drain; the Containerfile exposes the same ports and runs as non-root.

Run by scripts/test.sh (the `test` virtualenv); needs MNIST_SERVER_BIN.
"""
import copy
import pathlib
import re
import subprocess
import sys
import unittest

import grpc
import kubernetes_validate
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "interop"))
from common import ROOT, SERVER_BIN, Server, stop_server  # noqa: E402

KUBERNETES_VERSION = "1.31.0"
KUBERNETES = ROOT / "deploy/kubernetes"
KSERVE = ROOT / "deploy/kserve/inferenceservice.yaml"
CUSTOM_KINDS = {"ServiceMonitor", "InferenceService"}


def load_all(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def merge(base, patch):
    """A strategic merge patch, as far as these manifests need it: maps merge,
    `null` deletes, lists of named items (containers, env, volumes) merge by
    name and volumeMounts by mountPath, other lists are replaced."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and isinstance(out.get(key), list) and value and isinstance(value[0], dict) \
                and ("name" in value[0] or "mountPath" in value[0]):
            merge_key = "name" if "name" in value[0] else "mountPath"
            items = {item[merge_key]: item for item in out[key]}
            for item in value:
                items[item[merge_key]] = merge(items.get(item[merge_key], {}), item)
            out[key] = list(items.values())
        else:
            out[key] = merge(out.get(key), value)
    return out


def render(directory):
    """The objects `kubectl apply -k directory` would create."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else load_all(path)
    for patch in kustomization.get("patches", []):
        patch = yaml.safe_load((directory / patch["path"]).read_text())
        for i, obj in enumerate(objects):
            if (obj["kind"], obj["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"]):
                objects[i] = merge(obj, patch)
    for label in kustomization.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in containers(obj):
                if container["image"] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return objects


def containers(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "InferenceService":
        return spec["predictor"]["containers"]
    return spec.get("template", {}).get("spec", {}).get("containers", [])


def env_of(container, configmaps):
    env = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    env.update({e["name"]: e.get("value") for e in container.get("env", [])})
    return env


def port_of(address):
    return int(address.rsplit(":", 1)[1])


class ManifestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        help_text = subprocess.run([SERVER_BIN, "--help"], capture_output=True, text=True, check=True).stdout
        cls.server_env = set(re.findall(r"env: (MNIST_[A-Z_]+)=", help_text))
        assert len(cls.server_env) > 15, help_text
        cls.base = render(KUBERNETES)
        cls.overlays = {d.name: render(d) for d in sorted((KUBERNETES / "overlays").iterdir())}
        cls.kserve = load_all(KSERVE)

    def by_kind(self, objects, kind):
        return [o for o in objects if o["kind"] == kind]

    def test_every_manifest_validates_against_the_kubernetes_schemas(self):
        renderings = {"base": self.base, **self.overlays, "kserve": self.kserve}
        checked = 0
        for name, objects in renderings.items():
            for obj in objects:
                if obj["kind"] in CUSTOM_KINDS:
                    continue
                try:
                    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                except kubernetes_validate.ValidationError as error:
                    self.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")
                checked += 1
        self.assertGreaterEqual(checked, 8 * 3)
        self.assertEqual({o["kind"] for o in self.base},
                         {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                          "NetworkPolicy"})

    def test_custom_resources_have_what_their_operators_read(self):
        (monitor,) = self.by_kind(self.overlays["prometheus-operator"], "ServiceMonitor")
        metrics_services = [s for s in self.by_kind(self.base, "Service")
                            if all(s["metadata"].get("labels", {}).get(k) == v
                                   for k, v in monitor["spec"]["selector"]["matchLabels"].items())]
        self.assertEqual([s["metadata"]["name"] for s in metrics_services], ["mnist-metrics"])
        self.assertIn(monitor["spec"]["endpoints"][0]["port"], [p["name"] for p in metrics_services[0]["spec"]["ports"]])
        (service,) = self.kserve
        self.assertEqual((service["apiVersion"], service["kind"]), ("serving.kserve.io/v1beta1", "InferenceService"))
        (container,) = containers(service)
        env = env_of(container, {})
        self.assertLessEqual(set(k for k in env if k.startswith("MNIST_")), self.server_env)
        (port,) = container["ports"]
        self.assertEqual((port["name"], port["containerPort"]), ("h2c", port_of(env["MNIST_ADDR"])),
                         "KServe routes gRPC to the port named h2c: the server's gRPC port")
        self.assertEqual(container["readinessProbe"]["grpc"]["port"], port["containerPort"])

    def deployment(self, objects):
        (deployment,) = self.by_kind(objects, "Deployment")
        configmaps = {c["metadata"]["name"]: c["data"] for c in self.by_kind(objects, "ConfigMap")}
        (container,) = containers(deployment)
        return deployment, container, env_of(container, configmaps)

    def test_settings_ports_and_grace_period_agree_with_the_server(self):
        for name, objects in [("base", self.base), *self.overlays.items()]:
            deployment, container, env = self.deployment(objects)
            unknown = {k for k in env if k.startswith("MNIST_")} - self.server_env
            self.assertFalse(unknown, f"{name}: not in mnist-server --help: {unknown}")
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            self.assertEqual(ports, {"grpc": port_of(env["MNIST_ADDR"]), "http": port_of(env["MNIST_HTTP_ADDR"]),
                                     "metrics": port_of(env["MNIST_METRICS_ADDR"])}, name)
            pod = deployment["spec"]["template"]["spec"]
            pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            self.assertGreater(pod["terminationGracePeriodSeconds"], pause + float(env["MNIST_SHUTDOWN_TIMEOUT"]) + 5,
                               f"{name}: the kubelet would kill the server while it drains")
            self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
            security = container["securityContext"]
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            self.assertTrue(security["readOnlyRootFilesystem"])
            self.assertFalse(security["allowPrivilegeEscalation"])
            self.assertEqual(security["capabilities"]["drop"], ["ALL"])
        services = {s["metadata"]["name"]: s for s in self.by_kind(self.base, "Service")}
        self.assertEqual(services["mnist-headless"]["spec"]["clusterIP"], "None")
        _, container, env = self.deployment(self.base)
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
            self.assertEqual(container[probe]["grpc"]["port"], port_of(env["MNIST_ADDR"]), probe)
        (policy,) = self.by_kind(self.base, "NetworkPolicy")
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        self.assertEqual(allowed, {port_of(env[k]) for k in ["MNIST_ADDR", "MNIST_HTTP_ADDR", "MNIST_METRICS_ADDR"]})
        # With TLS the kubelet's plaintext gRPC probe cannot work: the secure overlay probes with mnist-client.
        _, secure, secure_env = self.deployment(self.overlays["secure"])
        self.assertIn("MNIST_TLS_CERT", secure_env)
        self.assertNotIn("grpc", secure["readinessProbe"])
        self.assertIn("health", secure["readinessProbe"]["exec"]["command"])

    def test_probe_services_are_reported_serving_by_the_server(self):
        _, container, _ = self.deployment(self.base)
        names = {container[p]["grpc"].get("service", "") for p in ["startupProbe", "readinessProbe", "livenessProbe"]}
        (kserve_container,) = containers(self.kserve[0])
        names.add(kserve_container["readinessProbe"]["grpc"]["service"])
        server = Server()
        self.addCleanup(stop_server, server)
        with grpc.insecure_channel(server.addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in names:
                status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
                self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING, name)

    def test_the_containerfile_matches(self):
        text = (ROOT / "Containerfile").read_text()
        runtime = text[text.index("AS runtime"):]
        exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", runtime, re.M).group(1).split()}
        env = dict(re.findall(r"(MNIST_[A-Z_]+)=(\S+)", runtime))
        self.assertLessEqual(set(env), self.server_env)
        self.assertEqual(exposed, {port_of(env[k]) for k in ["MNIST_ADDR", "MNIST_HTTP_ADDR", "MNIST_METRICS_ADDR"]})
        user = re.search(r"^USER (\d+)", runtime, re.M).group(1)
        self.assertNotEqual(user, "0")
        _, _, k8s_env = self.deployment(self.base)
        self.assertEqual({port_of(k8s_env[k]) for k in ["MNIST_ADDR", "MNIST_HTTP_ADDR", "MNIST_METRICS_ADDR"]}, exposed)
        self.assertIn("STOPSIGNAL SIGTERM", runtime)


if __name__ == "__main__":
    unittest.main(verbosity=2)
