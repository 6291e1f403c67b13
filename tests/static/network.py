"""A small evaluator of Kubernetes NetworkPolicies over built manifests.

It answers one question: may endpoint A open a connection to endpoint B on port P? It
follows the NetworkPolicy semantics of networking.k8s.io/v1: a pod is isolated in a
direction once any policy of that type selects it, and then a connection must be allowed
both by an egress rule of a policy that selects the sender and by an ingress rule of a
policy that selects the receiver; rules are unions, the peers and ports of a rule are
ANDed. An `ipBlock` is taken to match only hosts outside the cluster, which is what it is
meant for (whether it matches pod addresses is left to the network plugin).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any, cast

Doc = dict[str, Any]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass
class Endpoint:
    """A pod (namespace set) or a host outside the cluster (ip set)."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    # The pod's named container ports, which policies may refer to by name.
    named_ports: Mapping[str, int] = field(default_factory=dict)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector; an empty one matches everything."""
    selector = selector or {}
    for key, value in cast(Mapping[str, str], selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in cast(list[Doc], selector.get("matchExpressions") or []):
        key, operator = expression["key"], expression["operator"]
        values = cast(list[str], expression.get("values") or [])
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown label selector operator {operator!r}")
        if not ok:
            return False
    return True


def policy_types(policy: Doc) -> set[str]:
    spec = cast(Doc, policy["spec"])
    if "policyTypes" in spec:
        return set(cast(list[str], spec["policyTypes"]))
    return {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}


def pod_template(doc: Doc) -> Doc | None:
    """The pod template (metadata and spec) of a workload, or None for other objects."""
    kind, spec = doc.get("kind"), cast(Doc, doc.get("spec", {}))
    if kind == "Pod":
        return doc
    if kind == "CronJob":
        return cast(Doc, spec["jobTemplate"]["spec"]["template"])
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return cast(Doc, spec["template"])
    return None


def pod_endpoints(docs: Iterable[Doc]) -> dict[str, Endpoint]:
    """One pod of each workload in a build, named after the workload."""
    endpoints: dict[str, Endpoint] = {}
    for doc in docs:
        template = pod_template(doc)
        if template is None:
            continue
        name = cast(str, doc["metadata"]["name"])
        assert name not in endpoints, f"two workloads named {name}"
        named_ports = {
            port["name"]: port["containerPort"]
            for container in template["spec"].get("containers", [])
            for port in container.get("ports", [])
            if "name" in port
        }
        endpoints[name] = Endpoint(
            name=name,
            namespace=cast(str, doc["metadata"]["namespace"]),
            labels=cast(dict[str, str], template.get("metadata", {}).get("labels", {})),
            named_ports=named_ports,
        )
    return endpoints


class NetworkModel:
    """The NetworkPolicies and Namespaces of a build, plus namespaces that exist anyway."""

    def __init__(self, docs: Sequence[Doc], extra_namespaces: Iterable[str] = ()) -> None:
        self.policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
        self.namespace_labels: dict[str, dict[str, str]] = {
            name: {NAMESPACE_NAME_LABEL: name} for name in extra_namespaces
        }
        for doc in docs:
            if doc["kind"] == "Namespace":
                name = cast(str, doc["metadata"]["name"])
                labels = cast(dict[str, str], doc["metadata"].get("labels", {}))
                # The API server sets this label on every namespace.
                self.namespace_labels[name] = {**labels, NAMESPACE_NAME_LABEL: name}

    def allows(self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self.egress_allows(source, target, port, protocol) and (
            self.ingress_allows(source, target, port, protocol)
        )

    def egress_allows(
        self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
    ) -> bool:
        """Whether the sender's side lets the connection out, whatever the receiver says."""
        return self._side_allows("Egress", source, target, target, port, protocol)

    def ingress_allows(
        self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
    ) -> bool:
        """Whether the receiver's side lets the connection in, whatever the sender says."""
        return self._side_allows("Ingress", target, source, target, port, protocol)

    def selecting(self, pod: Endpoint, direction: str) -> list[Doc]:
        """The policies of `direction` that select `pod`: if any, the pod is isolated."""
        return [
            policy
            for policy in self.policies
            if policy["metadata"].get("namespace") == pod.namespace
            and direction in policy_types(policy)
            and selector_matches(policy["spec"].get("podSelector"), pod.labels)
        ]

    def _side_allows(
        self,
        direction: str,
        pod: Endpoint,
        peer: Endpoint,
        destination: Endpoint,
        port: int,
        protocol: str,
    ) -> bool:
        if pod.namespace is None:
            return True  # a host outside the cluster: not subject to NetworkPolicy
        policies = self.selecting(pod, direction)
        if not policies:
            return True
        rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for policy in policies:
            namespace = cast(str, policy["metadata"]["namespace"])
            for rule in cast(list[Doc], policy["spec"].get(rules_key) or []):
                if _ports_match(rule.get("ports"), destination, port, protocol) and (
                    self._peers_match(rule.get(peers_key), namespace, peer)
                ):
                    return True
        return False

    def _peers_match(self, peers: list[Doc] | None, namespace: str, endpoint: Endpoint) -> bool:
        if not peers:
            return True  # no `to`/`from`: any peer
        return any(self.peer_matches(peer, namespace, endpoint) for peer in peers)

    def peer_matches(self, peer: Doc, namespace: str, endpoint: Endpoint) -> bool:
        """Whether one NetworkPolicyPeer of a policy in `namespace` matches `endpoint`."""
        if "ipBlock" in peer:
            if endpoint.ip is None:
                return False
            block = cast(Doc, peer["ipBlock"])
            address = ip_address(endpoint.ip)
            excepted = any(address in ip_network(cidr) for cidr in block.get("except", []))
            return address in ip_network(block["cidr"]) and not excepted
        if endpoint.namespace is None:
            return False
        if "namespaceSelector" in peer:
            namespace_labels = self.namespace_labels.get(endpoint.namespace, {})
            if not selector_matches(peer["namespaceSelector"], namespace_labels):
                return False
        elif endpoint.namespace != namespace:
            return False
        return selector_matches(peer.get("podSelector"), endpoint.labels)


def _ports_match(ports: list[Doc] | None, destination: Endpoint, port: int, protocol: str) -> bool:
    if not ports:
        return True  # no `ports`: every port
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        number = entry["port"]
        if isinstance(number, str):
            # A named port is the destination pod's.
            if number not in destination.named_ports:
                continue
            number = destination.named_ports[number]
        first = int(number)
        last = int(entry.get("endPort") or first)
        if first <= port <= last:
            return True
    return False
