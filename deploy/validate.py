#!/usr/bin/env python3
"""Offline checks of deploy/: Kubernetes manifests against the Kubernetes JSON schemas
(kubernetes-validate ships them, so nothing is fetched), the kustomization's resource list,
the docker-compose file's shape, and the Dockerfile's non-root, multi-stage form.

Run by .ci/run inside a venv under target/ (see there). Exit 0 when everything passes."""

import pathlib
import subprocess
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
K8S = DEPLOY / "kubernetes"
# The oldest Kubernetes release we document support for, and the
# newest schemas shipped with the validator.
VERSIONS = ["1.30.0", "1.37.0"]

problems = []


def manifests():
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def check_schemas():
    files = [str(p) for p in manifests()]
    for version in VERSIONS:
        run = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet", "-k", version, *files],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            problems.append(f"schema validation against {version}:\n{run.stdout}{run.stderr}")


def check_kustomization():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = {str((K8S / r).resolve()) for r in k["resources"]}
    for p in manifests():
        if str(p.resolve()) not in listed:
            problems.append(f"kustomization.yaml does not list {p.relative_to(K8S)}")
    kinds = set()
    for p in manifests():
        for doc in yaml.safe_load_all(p.read_text()):
            if doc:
                kinds.add(doc["kind"])
    for kind in ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget",
                 "HorizontalPodAutoscaler", "NetworkPolicy"]:
        if kind not in kinds:
            problems.append(f"no {kind} among the manifests")
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for probe in ["readinessProbe", "livenessProbe"]:
        if probe not in container:
            problems.append(f"deployment: no {probe}")
    if "requests" not in container.get("resources", {}):
        problems.append("deployment: no resource requests")
    sc = container.get("securityContext", {})
    if not sc.get("readOnlyRootFilesystem") or not pod["securityContext"].get("runAsNonRoot"):
        problems.append("deployment: must run non-root on a read-only root filesystem")
    env = {e["name"]: e.get("value") for e in container["env"]}
    grace = pod["terminationGracePeriodSeconds"]
    drain = sum(int(env[n].rstrip("s")) for n in ["TRUSTBRIDGE_SHUTDOWN_DELAY", "TRUSTBRIDGE_SHUTDOWN_GRACE"])
    if grace <= drain:
        problems.append(f"terminationGracePeriodSeconds {grace} must exceed delay + grace {drain}")


def check_compose():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose.get("services", {})
    gateways = [n for n, s in services.items() if "TRUSTBRIDGE_REDIS_URL" in s.get("environment", {})]
    if len(gateways) != 2 or "redis" not in services:
        problems.append(f"docker-compose: want two trustbridge replicas and redis, got {list(services)}")
    for name in gateways:
        s = services[name]
        if not s.get("read_only") or s.get("user", "0").split(":")[0] in ("0", "root"):
            problems.append(f"docker-compose: {name} must be read-only and non-root")


def check_dockerfile():
    text = (DEPLOY / "Dockerfile").read_text()
    if text.count("\nFROM ") + text.startswith("FROM ") < 2:
        problems.append("Dockerfile: not multi-stage")
    if "--release" not in text:
        problems.append("Dockerfile: no release build")
    users = [l.split()[1] for l in text.splitlines() if l.startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problems.append("Dockerfile: the runtime stage must set a non-root USER")


for check in [check_schemas, check_kustomization, check_compose, check_dockerfile]:
    check()
if problems:
    print("deploy/ validation failed:")
    for p in problems:
        print(" -", p)
    sys.exit(1)
print(f"deploy/: {len(manifests())} manifest files valid against Kubernetes {', '.join(VERSIONS)}; "
      "compose and Dockerfile checks passed")
