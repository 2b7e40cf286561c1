#!/usr/bin/env python3
"""Offline checks of deploy/: Kubernetes manifests against the Kubernetes JSON schemas
(kubernetes-validate ships them, so nothing is fetched), the kustomization's resource list,
the docker-compose file's shape, and the Dockerfile's non-root, multi-stage form.

With `--helm PATH` it checks the Helm chart deploy/helm/trustbridge instead: `helm lint
--strict` and `helm template` with the default values and with ci/all-values.yaml (every
optional part on), the rendered output against the same schemas and the same Deployment
checks as the manifests, Services and the ServiceMonitor wired to real ports, and the
chart's refusals (admin listener without a token Secret, probes on a disabled listener,
values that values.schema.json rejects).

Run by .ci/run inside a venv under target/ (see there). Exit 0 when everything passes."""

import argparse
import pathlib
import subprocess
import sys
import tempfile

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
K8S = DEPLOY / "kubernetes"
CHART = DEPLOY / "helm" / "trustbridge"
CHART_VALUES = {"default values": [], "ci/all-values.yaml": ["-f", str(CHART / "ci" / "all-values.yaml")]}
# The oldest Kubernetes release we document support for, and the
# newest schemas shipped with the validator.
VERSIONS = ["1.30.0", "1.37.0"]
# Kinds a deployment of trustbridge must hold (the defaults of the chart, the kustomization).
CORE_KINDS = ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget",
              "HorizontalPodAutoscaler", "NetworkPolicy"]

problems = []


def manifests():
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def load_docs(paths):
    return [doc for p in paths for doc in yaml.safe_load_all(pathlib.Path(p).read_text()) if doc]


def check_schemas(files, what):
    for version in VERSIONS:
        run = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet", "-k", version, *map(str, files)],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            problems.append(f"{what}: schema validation against {version}:\n{run.stdout}{run.stderr}")


def check_kinds(docs, want, what):
    kinds = {doc["kind"] for doc in docs}
    for kind in want:
        if kind not in kinds:
            problems.append(f"{what}: no {kind} among the manifests")


def check_deployment(deployment, what):
    """The gateway's pod: probes, requests, non-root on a read-only root, a grace period
    longer than the shutdown drain."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for probe in ["readinessProbe", "livenessProbe"]:
        if probe not in container:
            problems.append(f"{what}: no {probe}")
    if "requests" not in container.get("resources", {}):
        problems.append(f"{what}: no resource requests")
    sc = container.get("securityContext", {})
    if not sc.get("readOnlyRootFilesystem") or not pod["securityContext"].get("runAsNonRoot"):
        problems.append(f"{what}: must run non-root on a read-only root filesystem")
    env = {e["name"]: e.get("value") for e in container["env"]}
    grace = pod["terminationGracePeriodSeconds"]
    drain = sum(int(env[n].rstrip("s")) for n in ["TRUSTBRIDGE_SHUTDOWN_DELAY", "TRUSTBRIDGE_SHUTDOWN_GRACE"])
    if grace <= drain:
        problems.append(f"{what}: terminationGracePeriodSeconds {grace} must exceed delay + grace {drain}")


def check_wiring(docs, what):
    """Every Service selects a Deployment's pods and targets a port they name, probes name
    real ports, and every ServiceMonitor scrapes a named port of a Service it selects."""
    pods = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]
    services = [d for d in docs if d["kind"] == "Service"]

    def ports_of(template):
        return {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    for pod in pods:
        for c in pod["spec"]["containers"]:
            for probe in ["readinessProbe", "livenessProbe"]:
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports_of(pod):
                    problems.append(f"{what}: {probe} port {port!r} is not a container port")
    for svc in services:
        name = svc["metadata"]["name"]
        matched = [p for p in pods if selects(svc["spec"]["selector"], p["metadata"]["labels"])]
        if not matched:
            problems.append(f"{what}: Service {name} selects no Deployment's pods")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and not any(target in ports_of(p) for p in matched):
                problems.append(f"{what}: Service {name} targets port {target!r} its pods do not name")
    for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
        name = sm["metadata"]["name"]
        selected = [s for s in services if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        if not selected:
            problems.append(f"{what}: ServiceMonitor {name} selects no Service")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("path") != "/metrics":
                problems.append(f"{what}: ServiceMonitor {name} scrapes {ep.get('path')!r}, not /metrics")
            if not any(ep["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected):
                problems.append(f"{what}: ServiceMonitor {name} scrapes port {ep['port']!r} no selected Service has")
            if ep["port"] == "admin" and not ep.get("authorization", {}).get("credentials", {}).get("name"):
                problems.append(f"{what}: ServiceMonitor {name} scrapes the admin port without its token")


def check_kustomization():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = {str((K8S / r).resolve()) for r in k["resources"]}
    for p in manifests():
        if str(p.resolve()) not in listed:
            problems.append(f"kustomization.yaml does not list {p.relative_to(K8S)}")
    docs = load_docs(manifests())
    check_kinds(docs, CORE_KINDS, "deploy/kubernetes")
    check_deployment(yaml.safe_load((K8S / "deployment.yaml").read_text()), "deployment")
    check_wiring(docs, "deploy/kubernetes")


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


# === the Helm chart ===


def helm_run(helm, *args):
    return subprocess.run([helm, *args], capture_output=True, text=True)


def helm_template(helm, *values):
    return helm_run(helm, "template", "tb", str(CHART), "--namespace", "trustbridge", *values)


def check_chart(helm):
    cargo = (DEPLOY.parent / "Cargo.toml").read_text()
    version = next(l.split('"')[1] for l in cargo.splitlines() if l.startswith("version"))
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    if app_version != version:
        problems.append(f"Chart.yaml: appVersion {app_version} is not Cargo.toml's {version}")

    rendered = {}
    with tempfile.TemporaryDirectory() as tmp:
        for what, values in CHART_VALUES.items():
            lint = helm_run(helm, "lint", "--strict", str(CHART), *values)
            if lint.returncode != 0:
                problems.append(f"helm lint ({what}):\n{lint.stdout}{lint.stderr}")
            out = helm_template(helm, *values)
            if out.returncode != 0:
                problems.append(f"helm template ({what}):\n{out.stderr}")
                continue
            path = pathlib.Path(tmp) / (what.replace("/", "_") + ".yaml")
            path.write_text(out.stdout)
            rendered[what] = load_docs([path])
            check_schemas([path], f"helm template ({what})")

    for what, docs in rendered.items():
        gateways = [d for d in docs if d["kind"] == "Deployment" and not d["metadata"]["name"].endswith("-redis")]
        if len(gateways) != 1:
            problems.append(f"helm template ({what}): want one trustbridge Deployment, got {len(gateways)}")
        for d in gateways:
            check_deployment(d, f"helm template ({what}) deployment")
        check_wiring(docs, f"helm template ({what})")
    if "default values" in rendered:
        check_kinds(rendered["default values"], CORE_KINDS + ["ServiceAccount"], "helm template (default values)")
    if "ci/all-values.yaml" in rendered:
        docs = rendered["ci/all-values.yaml"]
        check_kinds(docs, ["ServiceMonitor", "Service", "NetworkPolicy", "PodDisruptionBudget"],
                    "helm template (ci/all-values.yaml)")
        env = {e["name"] for d in docs if d["kind"] == "Deployment"
               for c in d["spec"]["template"]["spec"]["containers"] for e in c["env"]}
        for name in ["TRUSTBRIDGE_ADMIN_LISTEN", "TRUSTBRIDGE_ADMIN_TOKEN_FILE", "TRUSTBRIDGE_TLS_CERT"]:
            if name not in env:
                problems.append(f"helm template (ci/all-values.yaml): no {name}")

    # Settings the chart must refuse to render.
    for args, says in [
        (["--set", "admin.enabled=true"], "admin.tokenSecret.name"),
        (["--set", "probes.port=admin"], "admin.enabled is false"),
        (["--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.port=metrics"], "value must be one of"),
        (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
    ]:
        out = helm_template(helm, *args)
        if out.returncode == 0 or says not in out.stderr:
            problems.append(f"helm template {' '.join(args)}: want a refusal naming {says!r}, got "
                            f"exit {out.returncode}: {out.stderr.strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", help="check the Helm chart with this helm binary")
    args = parser.parse_args()
    if args.helm:
        check_chart(args.helm)
        done = (f"deploy/helm/trustbridge: lint, render ({', '.join(CHART_VALUES)}) valid against "
                f"Kubernetes {', '.join(VERSIONS)}; wiring and refusals checked")
    else:
        check_schemas(manifests(), "deploy/kubernetes")
        for check in [check_kustomization, check_compose, check_dockerfile]:
            check()
        done = (f"deploy/: {len(manifests())} manifest files valid against Kubernetes {', '.join(VERSIONS)}; "
                "compose and Dockerfile checks passed")
    if problems:
        print("deploy/ validation failed:")
        for p in problems:
            print(" -", p)
        sys.exit(1)
    print(done)


main()
