"""deploy/kubernetes and deploy/grafana: every overlay rendered by the real kustomize, every object checked.

Rendering: ``kustomize build`` when a kustomize binary is on PATH, else ``kubectl kustomize`` (kustomize v5 built
into kubectl, which this project's machine images come with). Neither PyPI nor Debian carries kustomize itself
(PyPI's "kustomize" is an unrelated Python tool), so rather than a Python imitation of it the tests fail,
naming what is missing, when neither binary is there.

Validation, offline: every built-in kind against the Kubernetes OpenAPI schemas that kubernetes-validate
ships (strict: an unknown or misplaced field is an error), for the oldest and the newest Kubernetes version it
has; the ServiceMonitor, a CRD those schemas do not have, against a minimal schema of its own below. Then what
no schema can say: that selectors select, names resolve, the worker's settings load through conf/settings.py
with the environment the pod gets, and that every metric the Grafana dashboard queries is in a live worker's
/_s3cache/metrics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions

from cache.cluster.connect import parse as parse_redis_url
from conf.settings import SECTIONS, env_name, load_settings, parse_size
from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker, scrape
from rig.redis import RedisServer
from tests.conftest import make_client

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
DASHBOARD = ROOT / "deploy" / "grafana" / "s3cache-dashboard.json"
OVERLAYS = ["single-node", "production"]
RENDERED = ["base", *OVERLAYS]
K8S_VERSIONS = sorted({all_versions()[0], all_versions()[-1]})
# Created by hand before an overlay is applied (docs/deployment.md), so not in any render.
EXTERNAL_SECRETS = {"s3cache", "s3cache-tls"}
WORKER_SECRET_ENV = {"S3CACHE_CLUSTER_SECRET": "cluster-secret",
                     "S3CACHE_ORIGIN_ACCESS_KEY_ID": "origin-access-key-id",
                     "S3CACHE_ORIGIN_SECRET_ACCESS_KEY": "origin-secret-access-key"}
ADVERTISE_URL = "http://$(POD_NAME).s3cache-peers.$(POD_NAMESPACE).svc.cluster.local:29998"
# Labels Prometheus adds to every scraped series (target labels), and the histogram's bucket label.
SCRAPE_LABELS = {"pod", "namespace", "instance", "job", "service", "endpoint", "container", "le"}

DURATION = r"^[0-9]+(ms|s|m|h)$"
SERVICEMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object", "additionalProperties": False, "required": ["matchLabels"],
                             "properties": {"matchLabels": {"type": "object", "minProperties": 1,
                                                            "additionalProperties": {"type": "string"}}}},
                "namespaceSelector": {"type": "object"},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["port", "path"],
                    "properties": {"port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                                   "interval": {"type": "string", "pattern": DURATION},
                                   "scrapeTimeout": {"type": "string", "pattern": DURATION},
                                   "scheme": {"enum": ["http", "https"]}}}},
            },
        },
    },
}


def _kustomize() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail("neither kustomize nor kubectl (which has kustomize built in) is on PATH: install one to render "
                "deploy/kubernetes")


@cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    directory = KUBERNETES / ("base" if name == "base" else f"overlays/{name}")
    done = subprocess.run([*_kustomize(), str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kustomize {name}: {done.stderr}"
    assert "warning" not in done.stderr.lower(), f"kustomize {name} warns: {done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in ("StatefulSet", "Deployment")]


def worker(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return named(docs, "StatefulSet", "s3cache")


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def image_env() -> dict[str, str]:
    """The ENV lines of deploy/Dockerfile: the environment every container starts with."""
    env: dict[str, str] = {}
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def settings_of(docs: tuple[dict[str, Any], ...], pod: str = "s3cache-0",
                namespace: str = "s3cache") -> tuple[str, dict[str, str]]:
    """What the worker of pod `pod` reads: the mounted TOML, and its environment (the image's, then the pod's;
    Secrets stubbed)."""
    sts = worker(docs)
    toml_text = config_toml(docs)
    env = image_env()
    for var in container(sts, "s3cache")["env"]:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
        elif "fieldRef" in var["valueFrom"]:
            field = var["valueFrom"]["fieldRef"]["fieldPath"]
            env[var["name"]] = {"metadata.name": pod, "metadata.namespace": namespace}[field]
        else:
            env[var["name"]] = f"secret-{var['valueFrom']['secretKeyRef']['key']}"
    return toml_text, env


def redis_url_of(docs: tuple[dict[str, Any], ...]) -> str:
    """The cluster.redis_url a worker pod gets: its environment's, else the settings file's."""
    toml_text, env = settings_of(docs)
    return env.get("S3CACHE_CLUSTER_REDIS_URL") or str(tomllib.loads(toml_text)["cluster"]["redis_url"])


def assert_reaches(docs: tuple[dict[str, Any], ...], host: str, port: int) -> None:
    """host:port is what this render serves: a Service's port, or (pod.service) a pod of a StatefulSet whose headless
    Service has the port."""
    pod, _, service = host.partition(".")
    if not service:
        assert port in {p["port"] for p in named(docs, "Service", host)["spec"]["ports"]}, host
        return
    headless = named(docs, "Service", service.split(".")[0])
    assert headless["spec"]["clusterIP"] == "None" and port in {p["port"] for p in headless["spec"]["ports"]}, host
    sets = [s for s in of_kind(docs, "StatefulSet") if s["spec"]["serviceName"] == headless["metadata"]["name"]]
    assert any(pod.rpartition("-")[0] == s["metadata"]["name"] and int(pod.rpartition("-")[2]) < s["spec"]["replicas"]
               for s in sets), f"{host}: no such pod"


def assert_workers_reach_redis(docs: tuple[dict[str, Any], ...]) -> None:
    """Every host of the workers' cluster.redis_url (cache/cluster/connect.py's forms) is in the render."""
    target = parse_redis_url(redis_url_of(docs))
    if target.kind == "redis":
        url = urlsplit(target.url)
        assert url.scheme == "redis" and url.hostname and url.port, target.url
        assert_reaches(docs, url.hostname, url.port)
    for host, port in target.hosts:
        assert_reaches(docs, host, port)


def config_toml(docs: tuple[dict[str, Any], ...]) -> str:
    sts = worker(docs)
    args = container(sts, "s3cache")["args"]
    path = Path(args[args.index("--config") + 1])
    mount = next(m for m in container(sts, "s3cache")["volumeMounts"] if Path(m["mountPath"]) == path.parent)
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = named(docs, "ConfigMap", volume["configMap"]["name"])
    return str(configmap["data"][path.name])


# ---- rendering and schemas


@pytest.mark.parametrize("name", RENDERED)
def test_renders_with_kustomize(name: str) -> None:
    docs = render(name)
    kinds = {doc["kind"] for doc in docs}
    assert {"StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    if name != "base":
        assert {doc["metadata"].get("namespace") for doc in docs} == {"s3cache"}
        assert_workers_reach_redis(docs)  # what cluster.redis_url names; base leaves it to the overlays


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", RENDERED)
def test_every_object_validates_against_the_kubernetes_schemas(name: str, version: str) -> None:
    errors = []
    for doc in render(name):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            errors += [f"{where}: {e.message}" for e in jsonschema.Draft202012Validator(SERVICEMONITOR_SCHEMA)
                       .iter_errors(doc)]
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            errors.append(f"{where}: no schema for {doc['apiVersion']} in Kubernetes {version}")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message} at {'.'.join(map(str, exc.absolute_path))}")
    assert not errors, "\n".join(errors)


def test_the_servicemonitor_schema_rejects_a_typo() -> None:
    monitor = named(render("production"), "ServiceMonitor", "s3cache")
    bad = json.loads(json.dumps(monitor))
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    assert list(jsonschema.Draft202012Validator(SERVICEMONITOR_SCHEMA).iter_errors(bad))


# ---- what the schemas cannot check


@pytest.mark.parametrize("name", RENDERED)
def test_selectors_select_and_references_resolve(name: str) -> None:
    docs = render(name)
    by_name = {w["metadata"]["name"]: w for w in workloads(docs)}
    pods = {name: pod_labels(w) for name, w in by_name.items()}
    for w in workloads(docs):
        assert selects(w["spec"]["selector"]["matchLabels"], pod_labels(w)), w["metadata"]["name"]
        spec = w["spec"]["template"]["spec"]
        affinity = spec.get("affinity", {}).get("podAntiAffinity", {})
        terms = [t["podAffinityTerm"] for t in affinity.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        terms += affinity.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        terms += spec.get("topologySpreadConstraints", [])
        for term in terms:  # each spreads the workload's own pods
            assert selects(term["labelSelector"]["matchLabels"], pod_labels(w)), w["metadata"]["name"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                configmap = named(docs, "ConfigMap", volume["configMap"]["name"])
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in configmap["data"]
        for c in spec["containers"] + spec.get("initContainers", []):
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in EXTERNAL_SECRETS | {s["metadata"]["name"] for s in of_kind(docs, "Secret")}
    for service in of_kind(docs, "Service"):
        chosen = [w for w, labels in pods.items() if selects(service["spec"]["selector"], labels)]
        assert len(chosen) == 1, f"Service {service['metadata']['name']} selects {chosen}"
        containers = by_name[chosen[0]]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for c in containers for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: no container port {port['targetPort']}"
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        assert [w for w, labels in pods.items() if selects(pdb["spec"]["selector"]["matchLabels"], labels)]
    for sts in of_kind(docs, "StatefulSet"):
        governing = named(docs, "Service", sts["spec"]["serviceName"])
        assert governing["spec"]["clusterIP"] == "None" and governing["spec"]["publishNotReadyAddresses"] is True
        assert selects(governing["spec"]["selector"], pod_labels(sts))


@pytest.mark.parametrize("name", RENDERED)
def test_worker_pod(name: str, tmp_path: Path) -> None:
    sts = worker(render(name))
    spec = sts["spec"]["template"]["spec"]
    s3cache = container(sts, "s3cache")
    env = [var["name"] for var in s3cache["env"]]
    by_name = {var["name"]: var for var in s3cache["env"]}
    # the advertise URL is the pod's stable DNS name through the headless Service, from the downward API,
    # whose variables must come before the ones that use them
    assert by_name["S3CACHE_CLUSTER_ADVERTISE_URL"]["value"] == ADVERTISE_URL
    assert by_name["S3CACHE_CLUSTER_WORKER_ID"]["value"] == "$(POD_NAME)"
    assert by_name["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert by_name["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    for var in s3cache["env"]:
        for used in re.findall(r"\$\((\w+)\)", var.get("value", "")):
            assert env.index(used) < env.index(var["name"]), f"{var['name']} uses {used} before it is defined"
    assert sts["spec"]["serviceName"] == "s3cache-peers"
    for variable, key in WORKER_SECRET_ENV.items():
        # the origin's keys may be left out of the Secret: the worker then takes the AWS chain (IRSA, a role)
        optional = {"optional": True} if variable.startswith("S3CACHE_ORIGIN_") else {}
        assert by_name[variable]["valueFrom"]["secretKeyRef"] == {"name": "s3cache", "key": key, **optional}
    assert not [var for var in s3cache["env"] if "SECRET" in var["name"] and "value" in var]
    # probes, and a drain that fits in the grace period
    assert s3cache["readinessProbe"]["httpGet"]["path"] == "/_s3cache/readyz"
    assert s3cache["livenessProbe"]["httpGet"]["path"] == "/_s3cache/healthz"
    assert s3cache["startupProbe"]["httpGet"]["path"] == "/_s3cache/healthz"
    pre_stop = s3cache["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert 0 < int(pre_stop[1]) < spec["terminationGracePeriodSeconds"] - 30
    # one cache volume per worker, where cache.cache_dir says
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["cache"]
    toml_text, pod_env = settings_of(render(name))
    (tmp_path / "s3cache.toml").write_text(toml_text)
    settings = load_settings(tmp_path / "s3cache.toml", pod_env)
    mounts = {m["name"]: m["mountPath"] for m in s3cache["volumeMounts"]}
    assert Path(mounts["cache"]) == settings.cache.cache_dir
    assert Path(mounts["data"]) == settings.storage.data_dir
    volume = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert settings.cache.capacity_bytes <= 0.92 * _quantity(volume), "leave the filesystem room on the volume"
    assert spec["affinity"]["podAntiAffinity"]


@pytest.mark.parametrize("name", RENDERED)
def test_the_worker_settings_load_as_the_pod_gets_them(name: str, tmp_path: Path) -> None:
    docs = render(name)
    toml_text, env = settings_of(docs, pod="s3cache-2", namespace="team-a")
    for variable in env:
        if variable.startswith("S3CACHE_"):
            assert variable in {env_name(s, f) for s, model in SECTIONS.items() for f in model.model_fields}, variable
    assert "redis_url" in tomllib.loads(toml_text)["cluster"]
    (tmp_path / "s3cache.toml").write_text(toml_text)
    settings = load_settings(tmp_path / "s3cache.toml", env)
    alone = load_settings(tmp_path / "s3cache.toml", {})  # the file must not say what the image's environment overrides
    assert (alone.server.host, alone.storage.data_dir, alone.cache.cache_dir) == \
        (settings.server.host, settings.storage.data_dir, settings.cache.cache_dir)
    assert settings.cluster.advertise_url == "http://s3cache-2.s3cache-peers.team-a.svc.cluster.local:29998"
    assert settings.cluster.worker_id == "s3cache-2"
    assert settings.cluster.secret is not None and settings.cluster.secret.get_secret_value() == "secret-cluster-secret"
    assert settings.origin.access_key_id == "secret-origin-access-key-id"
    assert settings.server.host == "0.0.0.0" and settings.server.processes == 1
    assert urlsplit(settings.cluster.advertise_url).port == settings.server.port
    ports = {p["containerPort"] for p in container(worker(docs), "s3cache")["ports"]}
    assert settings.server.port in ports
    assert settings.cluster.redis_url == redis_url_of(docs)
    kind = parse_redis_url(settings.cluster.redis_url).kind  # what cache/cluster/connect.py makes a client of
    assert kind == {"production": "sentinel"}.get(name, "redis")
    if name != "base":
        assert_workers_reach_redis(docs)


def _quantity(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    size = parse_size(text)
    assert isinstance(size, int), text
    return size


@pytest.mark.parametrize("name", RENDERED)
def test_every_pod_is_non_root_read_only_and_bounded(name: str) -> None:
    for w in workloads(render(name)):
        spec = w["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, w["metadata"]["name"]
        assert spec["securityContext"]["runAsUser"] > 0
        for c in spec["containers"] + spec.get("initContainers", []):
            where = f"{w['metadata']['name']}/{c['name']}"
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: {kind}"


def test_single_node_has_one_redis_and_nothing_that_needs_an_operator() -> None:
    docs = render("single-node")
    redis = named(docs, "Deployment", "s3cache-redis")
    assert redis["spec"]["replicas"] == 1
    assert not of_kind(docs, "ServiceMonitor") and not of_kind(docs, "Ingress")


def test_production_ingress_servicemonitor_and_disruption_budgets() -> None:
    docs = render("production")
    ingress = named(docs, "Ingress", "s3cache")
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    endpoint = named(docs, "Service", "s3cache")
    # the endpoint's host and its virtual hosts (bucket.host, as server.domains in the settings names it)
    assert backends == [{"name": "s3cache", "port": {"name": endpoint["spec"]["ports"][0]["name"]}}] * 2
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == ["s3cache.example.com", "*.s3cache.example.com"]
    assert ingress["spec"]["tls"][0]["hosts"] == hosts
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    monitor = named(docs, "ServiceMonitor", "s3cache")
    scraped = [s for s in of_kind(docs, "Service") if selects(monitor["spec"]["selector"]["matchLabels"],
                                                              s["metadata"].get("labels", {}))]
    assert [s["metadata"]["name"] for s in scraped] == ["s3cache-peers"]  # one target per pod, never twice
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in scraped[0]["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/_s3cache/metrics"
    budgets = {p["metadata"]["name"] for p in of_kind(docs, "PodDisruptionBudget")}
    assert budgets == {"s3cache", "s3cache-redis-node"}


def test_production_workers_ask_the_sentinels_for_the_master() -> None:
    docs = render("production")
    nodes = named(docs, "StatefulSet", "s3cache-redis-node")
    assert nodes["spec"]["replicas"] == 3
    assert {c["name"] for c in nodes["spec"]["template"]["spec"]["containers"]} == {"redis", "sentinel"}
    config = next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("s3cache-redis-config"))
    script = config["data"]["redis-init.sh"]
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    monitor = re.search(r"^sentinel monitor (\S+) \$\{master\} 6379 (\d+)$", script, re.MULTILINE)
    assert monitor is not None and int(monitor.group(2)) == 2
    assert "s3cache-redis-sentinel." in script  # a starting node asks the sentinels who the master is
    named(docs, "Service", "s3cache-redis-sentinel")
    # the workers are given every sentinel (one per Redis node) and the master's name the sentinels monitor
    target = parse_redis_url(redis_url_of(docs))
    assert target.kind == "sentinel" and target.service == monitor.group(1) and target.db == 0
    assert list(target.hosts) == [(f"s3cache-redis-node-{i}.{nodes['spec']['serviceName']}", 26379)
                                  for i in range(nodes["spec"]["replicas"])]
    sentinel_port = next(p for c in nodes["spec"]["template"]["spec"]["containers"] if c["name"] == "sentinel"
                         for p in c["ports"])
    assert sentinel_port["containerPort"] == 26379
    # nothing stands between the workers and Redis any more
    assert {w["metadata"]["name"] for w in workloads(docs)} == {"s3cache", "s3cache-redis-node"}
    assert "s3cache-redis" not in {svc["metadata"]["name"] for svc in of_kind(docs, "Service")}  # HAProxy's, once


def test_the_objects_in_the_deployment_guide_validate() -> None:
    """docs/deployment.md's whole objects (the local-NVMe StorageClass and PersistentVolume) are valid too."""
    checked = 0
    for block in re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "deployment.md").read_text(), re.DOTALL):
        for doc in yaml.safe_load_all(block):
            if isinstance(doc, dict) and {"apiVersion", "kind"} <= doc.keys():
                kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
                checked += 1
    assert checked >= 2


# ---- the Grafana dashboard


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] if panel["type"] != "row"
            for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(s3cache_[a-z0-9_]+)\b", expr))


def grouping_labels(expr: str) -> set[str]:
    labels = {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in group.split(",")}
    return labels | set(re.findall(r"([a-z_]+)\s*=~?", expr))


def test_the_dashboard_has_every_panel_the_issue_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    queried = set().union(*(metric_names(expr) for _, expr in dashboard_exprs()))
    assert {"s3cache_cache_hits_total", "s3cache_cache_misses_total", "s3cache_response_bytes_total",
            "s3cache_origin_block_fetches_total", "s3cache_peer_block_reads_total", "s3cache_cache_capacity_bytes",
            "s3cache_cache_used_bytes", "s3cache_cache_evictions_total", "s3cache_requests_total",
            "s3cache_request_duration_seconds_bucket", "s3cache_redis_up", "s3cache_cluster_workers"} <= queried
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    for title, expr in dashboard_exprs():
        assert metric_names(expr), f"{title}: {expr} queries no s3cache metric"
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), title


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """A cluster worker started on the settings file the pods mount, in front of moto, with its own Redis; after
    a few requests, every sample name of its /_s3cache/metrics -> the label names it carries."""
    workdir = tmp_path_factory.mktemp("k8s-worker")
    config = workdir / "s3cache.toml"
    config.write_text(config_toml(render("production")))
    origin = MotoOrigin(workdir).start()
    redis = RedisServer(workdir)
    w = None
    try:
        redis.start()
        w = Worker(["--config", str(config), "--data", str(workdir / "data"), "--cache-dir", str(workdir / "blocks"),
                    "--cache-capacity", "64M", "--origin", origin.url, "--redis", redis.url,
                    "--cluster-secret", "k8s-test-secret", "--worker-id", "s3cache-0"],
                   workdir, env=dict(ORIGIN_ENV), backend="s3").start()
        httpx.get(w.url + "/_s3cache/readyz", timeout=10).raise_for_status()
        s3 = make_client(w.url)
        s3.create_bucket(Bucket="dashboard")
        s3.put_object(Bucket="dashboard", Key="k", Body=b"x" * 4096)
        for _ in range(2):
            assert s3.get_object(Bucket="dashboard", Key="k")["Body"].read() == b"x" * 4096
        s3.head_object(Bucket="dashboard", Key="k")
        found: dict[str, set[str]] = {}
        for (sample, labels), _ in scrape(w.url).items():
            found.setdefault(sample, set()).update(label for label, _ in labels)
        yield found
    finally:
        if w is not None:
            w.stop()
        redis.stop()
        origin.stop()


def test_every_metric_the_dashboard_queries_is_on_a_live_worker(live_metrics: dict[str, set[str]]) -> None:
    missing = []
    for title, expr in dashboard_exprs():
        for metric in metric_names(expr):
            if metric not in live_metrics:
                missing.append(f"{title}: {metric}")
                continue
            for label in grouping_labels(expr) - SCRAPE_LABELS:
                if label not in live_metrics[metric]:
                    missing.append(f"{title}: {metric} has no label {label}")
    assert not missing, "\n".join(missing)
