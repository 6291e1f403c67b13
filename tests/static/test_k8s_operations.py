"""Static checks of what deploy/k8s gives operators: disruption budgets, autoscaling,
network policies, secrets and the external-postgres overlay.

Every check reads what `kubectl kustomize` builds, so selectors are checked against the
labels the pods really get.
"""

import math
from dataclasses import replace
from ipaddress import ip_network
from typing import cast

import pytest

from tests.static.manifests import (
    BASE,
    EXTERNAL_POSTGRES,
    NAMESPACE,
    Doc,
    built_docs,
    containers_of,
    env_value,
    objects,
    pod_spec,
)
from tests.static.network import (
    Endpoint,
    NetworkModel,
    pod_endpoints,
    pod_template,
    selector_matches,
)

SERVICES_WITH_BUDGETS = {"scheduler", "runner", "gateway", "postgres"}


def pod_labels(doc: Doc) -> dict[str, str]:
    template = pod_template(doc)
    assert template is not None, f"{doc['kind']}/{doc['metadata']['name']} has no pods"
    return cast(dict[str, str], template.get("metadata", {}).get("labels", {}))


def workloads(docs: list[Doc]) -> dict[str, Doc]:
    """`Kind/name` -> object, for every object that makes pods."""
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc
        for doc in docs
        if pod_template(doc) is not None
    }


def scaled_workloads(docs: list[Doc]) -> dict[str, Doc]:
    """The long-running workloads: the ones that a disruption budget can protect."""
    return {
        name: doc
        for name, doc in workloads(docs).items()
        if doc["kind"] in {"Deployment", "StatefulSet"}
    }


def scaled_by(docs: list[Doc], workload: Doc) -> Doc | None:
    """The HorizontalPodAutoscaler that sets the replicas of a workload, if any."""
    for hpa in objects(docs, "HorizontalPodAutoscaler").values():
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == (workload["kind"], workload["metadata"]["name"]):
            return hpa
    return None


def scaled_value(value: int | str, replicas: int) -> int:
    """An IntOrString of a PodDisruptionBudget; percentages round up, as Kubernetes does."""
    if isinstance(value, str):
        assert value.endswith("%"), value
        return math.ceil(replicas * int(value[:-1]) / 100)
    return value


def allowed_disruptions(budget: Doc, replicas: int) -> int:
    spec = budget["spec"]
    if "maxUnavailable" in spec:
        return scaled_value(spec["maxUnavailable"], replicas)
    return replicas - scaled_value(spec.get("minAvailable", 1), replicas)


# ---------------------------------------------------------------- selectors, budgets


def test_workloads_select_their_own_pods_only(build: str) -> None:
    """Budgets, Services and policies select by these labels, so they must tell pods apart."""
    docs = built_docs(build)
    all_pods = workloads(docs)
    for name, doc in all_pods.items():
        selector = doc["spec"].get("selector")
        if doc["kind"] == "Job" and selector is None:
            continue  # the Job controller makes its own
        assert selector and selector_matches(selector, pod_labels(doc)), name
        strays = [
            other
            for other, other_doc in all_pods.items()
            if other != name and selector_matches(selector, pod_labels(other_doc))
        ]
        assert not strays, f"{name} selects the pods of {strays}"
    for name, service in objects(docs, "Service").items():
        selected = [
            workload
            for workload, doc in all_pods.items()
            if selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(doc))
        ]
        assert [workload.split("/")[1] for workload in selected] == [name], (name, selected)


def test_every_long_running_workload_has_its_own_disruption_budget(build: str) -> None:
    docs = built_docs(build)
    budgets = objects(docs, "PodDisruptionBudget")
    all_pods = workloads(docs)
    covered = set()
    for name, workload in scaled_workloads(docs).items():
        matching = [
            budget_name
            for budget_name, budget in budgets.items()
            if selector_matches(budget["spec"]["selector"], pod_labels(workload))
        ]
        assert len(matching) == 1, f"{name}: disruption budgets {matching}"
        budget = budgets[matching[0]]
        strays = [
            other
            for other, doc in all_pods.items()
            if other != name and selector_matches(budget["spec"]["selector"], pod_labels(doc))
        ]
        assert not strays, f"the budget of {name} also counts the pods of {strays}"
        # At the fewest replicas it may have, a budget must still let one pod go, or
        # `kubectl drain` hangs on the node that runs it.
        hpa = scaled_by(docs, workload)
        replicas = hpa["spec"]["minReplicas"] if hpa else workload["spec"].get("replicas", 1)
        assert allowed_disruptions(budget, replicas) >= 1, f"{name}: blocks every drain"
        covered.add(workload["metadata"]["name"])
    assert len(covered) == len(budgets), "a disruption budget selects no workload"
    expected = SERVICES_WITH_BUDGETS - ({"postgres"} if build == EXTERNAL_POSTGRES else set())
    assert covered == expected


# ---------------------------------------------------------------- autoscaling


def test_runners_autoscale_on_cpu() -> None:
    docs = built_docs(BASE)
    hpas = objects(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"runner"}
    hpa = hpas["runner"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "runner",
    }
    runner = objects(docs, "Deployment")["runner"]
    assert scaled_by(docs, runner) is hpa
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
    cpu_targets = [
        metric["resource"]["target"]
        for metric in spec["metrics"]
        if metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    ]
    assert len(cpu_targets) == 1, spec["metrics"]
    assert cpu_targets[0]["type"] == "Utilization"
    assert 0 < cpu_targets[0]["averageUtilization"] <= 100
    # Utilisation is measured against the request, and the autoscaler owns the count.
    for container in containers_of(pod_spec(runner) or {}):
        assert "cpu" in container["resources"]["requests"], container["name"]
    assert "replicas" not in runner["spec"], "a re-apply would reset what the HPA chose"


# ---------------------------------------------------------------- secrets


def secret_references(spec: Doc) -> list[tuple[str, str | None]]:
    """(Secret, key or None for the whole Secret) that a pod spec needs to start."""
    needed: list[tuple[str, str | None]] = []
    for container in containers_of(spec):
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                needed.append((ref["name"], ref["key"]))
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref and not ref.get("optional"):
                needed.append((ref["name"], None))
    for volume in spec.get("volumes", []):
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            ref = source.get("secret")
            if ref and not ref.get("optional"):
                name = ref.get("secretName", ref.get("name"))
                keys = [item["key"] for item in ref.get("items", [])]
                needed += [(name, key) for key in keys] or [(name, None)]
    return needed


def test_secrets_that_pods_need_are_in_the_build(build: str) -> None:
    docs = built_docs(build)
    secrets = {
        name: set(secret.get("data", {})) | set(secret.get("stringData", {}))
        for name, secret in objects(docs, "Secret").items()
    }
    missing = [
        f"{workload}: {name}/{key or '*'}"
        for workload, doc in workloads(docs).items()
        for name, key in secret_references(pod_spec(doc) or {})
        if name not in secrets or (key is not None and key not in secrets[name])
    ]
    assert not missing, f"referenced but not in the build: {missing}"


def test_the_token_and_the_database_password_are_secrets(build: str) -> None:
    specs = {name: pod_spec(doc) or {} for name, doc in workloads(built_docs(build)).items()}
    expected = {
        ("Deployment/gateway", "API_TOKEN"),
        ("Deployment/scheduler", "DB_PASSWORD"),
        ("Job/migrate", "DB_PASSWORD"),
    }
    for workload, variable in expected:
        (container,) = specs[workload]["containers"]
        (entry,) = [entry for entry in container["env"] if entry["name"] == variable]
        assert "secretKeyRef" in entry.get("valueFrom", {}), (workload, variable)


# ---------------------------------------------------------------- network policies

# Endpoints that are not in the build: the cluster DNS, for each of our pods a pod of
# another namespace that wears its labels, a host on the internet, and the overlay's
# external database.
KUBE_DNS = Endpoint("kube-dns", namespace="kube-system", labels={"k8s-app": "kube-dns"})
OTHER_NAMESPACE = "elsewhere"
INTERNET = Endpoint("internet", ip="203.0.113.7")
PROBED_PORTS = [
    (53, "UDP"),
    (53, "TCP"),
    (80, "TCP"),
    (443, "TCP"),
    (5432, "TCP"),
    (8080, "TCP"),
    (50051, "TCP"),
    (50061, "TCP"),
]
Flow = tuple[str, str, int, str]


def external_database() -> Endpoint:
    """The overlay's external database, at the first address its egress policy allows."""
    policy = objects(built_docs(EXTERNAL_POSTGRES), "NetworkPolicy")["database-clients-egress"]
    blocks = [
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    assert len(blocks) == 1, f"expected one ipBlock for the database, got {blocks}"
    return Endpoint("external-db", ip=str(next(iter(ip_network(blocks[0])))))


def network(build: str) -> tuple[NetworkModel, dict[str, Endpoint]]:
    docs = built_docs(build)
    model = NetworkModel(docs, extra_namespaces=["kube-system", OTHER_NAMESPACE])
    endpoints = pod_endpoints(docs)
    impostors = [
        replace(pod, name=impostor(pod.name), namespace=OTHER_NAMESPACE)
        for pod in endpoints.values()
    ]
    database = [external_database()] if build == EXTERNAL_POSTGRES else []
    for outsider in (KUBE_DNS, INTERNET, *database, *impostors):
        endpoints[outsider.name] = outsider
    return model, endpoints


def impostor(name: str) -> str:
    """The name of the pod of another namespace that wears the labels of our pod `name`."""
    return f"{OTHER_NAMESPACE}/{name}"


def allowed_flows(build: str, side: str = "both") -> set[Flow]:
    """Every (source, destination, port, protocol) that the policies let through, among the
    probed ports, where one end at least is a pod of ours (a pair of replicas included).
    `side` "egress" or "ingress" asks what the sender's or the receiver's policies alone
    allow, for flows that start or end at a pod of ours."""
    model, endpoints = network(build)
    ours = {name for name, endpoint in endpoints.items() if endpoint.namespace == NAMESPACE}
    check = {
        "both": model.allows,
        "egress": model.egress_allows,
        "ingress": model.ingress_allows,
    }[side]

    def concerned(source: str, target: str) -> bool:
        if side == "egress":
            return source in ours
        if side == "ingress":
            return target in ours
        return source in ours or target in ours

    return {
        (source.name, target.name, port, protocol)
        for source in endpoints.values()
        for target in endpoints.values()
        if concerned(source.name, target.name)
        for port, protocol in PROBED_PORTS
        if check(source, target, port, protocol)
    }


SCHEDULER_CLIENTS = {("gateway", "scheduler", 50051, "TCP"), ("runner", "scheduler", 50051, "TCP")}
DNS_LOOKUPS = {
    (pod, "kube-dns", 53, protocol)
    for pod in ("gateway", "runner", "scheduler", "migrate")
    for protocol in ("UDP", "TCP")
}
DATABASE_HOSTS = {BASE: "postgres", EXTERNAL_POSTGRES: "external-db"}


def expected_flows(build: str) -> set[Flow]:
    """What the policies are meant to allow, where one end at least is a pod of ours."""
    _, endpoints = network(build)
    database = DATABASE_HOSTS[build]
    # The gateway takes anyone from outside our namespace; whom our own pods may call is
    # up to their egress, and it does not include the gateway.
    outsiders = [name for name, endpoint in endpoints.items() if endpoint.namespace != NAMESPACE]
    return (
        SCHEDULER_CLIENTS
        | DNS_LOOKUPS
        | {(source, "gateway", 8080, "TCP") for source in outsiders}
        | {("scheduler", database, 5432, "TCP"), ("migrate", database, 5432, "TCP")}
    )


def test_network_model_follows_networkpolicy_semantics() -> None:
    """The evaluator itself, on hand-made policies, so that its verdicts can be trusted."""
    namespace = {"kind": "Namespace", "metadata": {"name": "a", "labels": {"team": "x"}}}

    def policy(name: str, spec: Doc) -> Doc:
        return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "a"}, "spec": spec}

    web = Endpoint("web", namespace="a", labels={"app": "web"}, named_ports={"http": 8080})
    db = Endpoint("db", namespace="a", labels={"app": "db"})
    stranger = Endpoint("stranger", namespace="b", labels={"app": "web"})
    outside = Endpoint("outside", ip="10.1.2.3")
    assert NetworkModel([namespace]).allows(web, db, 5432), "no policy: all allowed"
    deny = policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    assert not NetworkModel([namespace, deny]).allows(web, db, 5432)
    assert not NetworkModel([namespace, deny]).allows(outside, web, 8080)
    db_in = policy(
        "db-in",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchExpressions": [_in("app", "web")]}}],
                    "ports": [{"port": 5432}],
                }
            ],
        },
    )
    web_out = policy(
        "web-out",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}],
        },
    )
    model = NetworkModel([namespace, deny, db_in, web_out], extra_namespaces=["b"])
    assert model.allows(web, db, 5432)
    assert not model.allows(web, db, 5433), "port"
    assert not model.allows(web, db, 5432, "UDP"), "protocol"
    assert not model.allows(db, web, 5432), "direction"
    assert not model.allows(stranger, db, 5432), "a podSelector alone means this namespace"
    web_in = policy(
        "web-in",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "b"}
                            }
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}},
                    ],
                    "ports": [{"port": "http"}],
                }
            ],
        },
    )
    model = NetworkModel([namespace, deny, web_in], extra_namespaces=["b"])
    assert model.allows(stranger, web, 8080), "namespaceSelector"
    assert model.allows(outside, web, 8080), "ipBlock"
    assert not model.allows(Endpoint("x", ip="10.9.0.1"), web, 8080), "ipBlock except"
    assert not model.allows(outside, web, 8081), "named port"
    assert not model.allows(db, web, 8080), "pods of the namespace are not in the ipBlock"


def _in(key: str, *values: str) -> Doc:
    return {"key": key, "operator": "In", "values": list(values)}


def test_a_default_deny_policy_isolates_every_pod(build: str) -> None:
    docs = built_docs(build)
    deny_all = [
        name
        for name, policy in objects(docs, "NetworkPolicy").items()
        if policy["spec"].get("podSelector") == {}
        and set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert deny_all, "no NetworkPolicy denies all traffic of every pod by default"
    model, endpoints = network(build)
    for endpoint in endpoints.values():
        if endpoint.namespace == NAMESPACE:
            for direction in ("Ingress", "Egress"):
                assert model.selecting(endpoint, direction), (endpoint.name, direction)


def test_every_network_policy_selector_matches_pods(build: str) -> None:
    """A typo in a label would silently turn an allow rule into nothing."""
    docs = built_docs(build)
    model, endpoints = network(build)
    ours = [endpoint for endpoint in endpoints.values() if endpoint.namespace == NAMESPACE]
    dead: list[str] = []
    for name, policy in objects(docs, "NetworkPolicy").items():
        selector = policy["spec"].get("podSelector")
        if not any(selector_matches(selector, pod.labels) for pod in ours):
            dead.append(f"{name}: podSelector")
        for rules_key, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in policy["spec"].get(rules_key) or []:
                for peer in rule.get(peers_key) or []:
                    if not any(
                        model.peer_matches(peer, NAMESPACE, endpoint)
                        for endpoint in endpoints.values()
                    ):
                        dead.append(f"{name}: {rules_key} peer {peer}")
    assert not dead, "\n".join(dead)


ALLOWED = [
    ("gateway", "scheduler", 50051, "TCP"),
    ("runner", "scheduler", 50051, "TCP"),
    ("scheduler", "postgres", 5432, "TCP"),
    ("migrate", "postgres", 5432, "TCP"),
    ("scheduler", "kube-dns", 53, "UDP"),
    ("runner", "kube-dns", 53, "TCP"),
    ("internet", "gateway", 8080, "TCP"),
]
DENIED = [
    ("runner", "postgres", 5432, "TCP"),
    ("gateway", "postgres", 5432, "TCP"),
    ("runner", "gateway", 8080, "TCP"),
    ("runner", "runner", 50061, "TCP"),
    ("scheduler", "runner", 50061, "TCP"),
    ("postgres", "scheduler", 50051, "TCP"),
    ("postgres", "kube-dns", 53, "UDP"),
    ("runner", "internet", 443, "TCP"),
    ("internet", "scheduler", 50051, "TCP"),
    ("internet", "postgres", 5432, "TCP"),
    (impostor("runner"), "scheduler", 50051, "TCP"),
    (impostor("scheduler"), "postgres", 5432, "TCP"),
    ("gateway", "scheduler", 5432, "TCP"),
]


@pytest.mark.parametrize("flow", ALLOWED, ids=lambda flow: "{}->{}:{}/{}".format(*flow))
def test_network_policies_allow(flow: Flow) -> None:
    assert flow in allowed_flows(BASE)


@pytest.mark.parametrize("flow", DENIED, ids=lambda flow: "{}->{}:{}/{}".format(*flow))
def test_network_policies_deny(flow: Flow) -> None:
    assert flow not in allowed_flows(BASE)


def test_network_policies_allow_exactly_the_intended_flows(build: str) -> None:
    allowed = allowed_flows(build)
    expected = expected_flows(build)
    assert not allowed - expected, f"allowed but not intended: {sorted(allowed - expected)}"
    assert not expected - allowed, f"intended but denied: {sorted(expected - allowed)}"


def test_each_side_allows_only_the_intended_flows(build: str) -> None:
    """Defence in depth: the sender's egress and the receiver's ingress rules each allow
    no more than the intended flows, so a slip on one side is not an opening."""
    _, endpoints = network(build)
    ours = {name for name, endpoint in endpoints.items() if endpoint.namespace == NAMESPACE}
    intended = expected_flows(build)
    expected = {
        "egress": {flow for flow in intended if flow[0] in ours},
        # The gateway lets anyone in; whom our own pods may call is up to their egress.
        "ingress": {flow for flow in intended if flow[1] in ours}
        | {(source, "gateway", 8080, "TCP") for source in endpoints},
    }
    for side, wanted in expected.items():
        allowed = allowed_flows(build, side)
        assert not allowed - wanted, f"{side} allows {sorted(allowed - wanted)}"
        assert not wanted - allowed, f"{side} denies {sorted(wanted - allowed)}"


# ---------------------------------------------------------------- external postgres


def test_external_postgres_overlay_drops_the_bundled_database() -> None:
    docs = built_docs(EXTERNAL_POSTGRES)
    postgres_objects = [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in docs
        if doc["metadata"]["name"].startswith("postgres") and doc["kind"] != "Secret"
    ]
    assert not postgres_objects, postgres_objects
    images = [
        container["image"]
        for doc in workloads(docs).values()
        for container in containers_of(pod_spec(doc) or {})
    ]
    assert not [image for image in images if image.startswith("postgres")], images
    # The rest of the base is all there.
    base_names = {(doc["kind"], doc["metadata"]["name"]) for doc in built_docs(BASE)}
    overlay_names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert base_names - overlay_names == {
        ("StatefulSet", "postgres"),
        ("Service", "postgres"),
        ("PodDisruptionBudget", "postgres"),
        ("NetworkPolicy", "postgres-ingress"),
    }


@pytest.mark.parametrize("workload", ["Deployment/scheduler", "Job/migrate"])
def test_external_postgres_overlay_points_the_database_clients_elsewhere(workload: str) -> None:
    docs = built_docs(EXTERNAL_POSTGRES)
    (container,) = (pod_spec(workloads(docs)[workload]) or {})["containers"]
    services = set(objects(docs, "Service"))
    host = env_value(container, "DB_HOST")
    assert host, f"{workload}: no DB_HOST"
    names = [entry["name"] for entry in container.get("env", [])]
    assert "DATABASE_URL" not in names, "DATABASE_URL would override DB_HOST"
    assert not container.get("envFrom"), "envFrom could bring in a DATABASE_URL"
    in_cluster = host.split(".")[0] in services | {"postgres"} or ".svc" in host
    assert not in_cluster, f"{workload}: DB_HOST {host} is in the cluster"
    # The port the clients dial is the one their egress policy opens.
    port = int(env_value(container, "DB_PORT") or 5432)
    model, endpoints = network(EXTERNAL_POSTGRES)
    name = workload.split("/")[1]
    assert model.allows(endpoints[name], endpoints["external-db"], port)
    assert not model.allows(endpoints["runner"], endpoints["external-db"], port)
    assert not model.allows(endpoints[name], endpoints["internet"], port)
