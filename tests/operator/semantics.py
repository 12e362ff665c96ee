"""What a real API server does to a write, as pure functions, for the tests' API servers.

kmock's emulator merges dicts; production code must not be tested against
that where the difference decides behaviour. These functions give the test
API servers (:mod:`tests.operator.apiserver` over HTTP, ``FakeCluster`` in
memory) the semantics the operator relies on:

* **server-side apply** (:func:`apply`): each field manager owns the fields of
  its last applied configuration; fields it applied before and no longer
  applies are removed (unless another manager owns them too); ``force`` takes
  ownership from other managers. Simplifications, none of which the operator
  depends on: lists are atomic (a real server merges ``containers`` by name),
  except ``metadata.ownerReferences``, merged by uid as the real schema says,
  and an object with two controller references is refused (422), as the real
  server refuses it;
* **RFC 7386 merge patch** (:func:`merge_patch`): absent keys kept, ``None``
  deletes, lists replaced;
* **normalisation** (:func:`canonical_quantity`): quantities are stored in
  canonical form (``0.5`` → ``500m``, ``1024Mi`` → ``1Gi``);
* **defaults** the kinds we render get from the server, and **fields a server
  version drops** (``Service.spec.trafficDistribution`` before 1.31);
* **structural schema defaulting** of custom resources (:func:`structural_defaults`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

Obj = dict[str, Any]
Path = tuple[str, ...]

QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))([KMGTPE]i|[numkMGTPE])?$")
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
BINARY = {"": 0, "Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}


def canonical_quantity(value: Any) -> Any:
    """The form the API server stores a quantity in (what ``kubectl get -o yaml`` shows)."""
    match = QUANTITY.match(str(value))
    if match is None or isinstance(value, bool):
        return value
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in BINARY and suffix:
        amount = number * Decimal(1024) ** BINARY[suffix]
        if amount == amount.to_integral_value():
            for unit, power in sorted(BINARY.items(), key=lambda item: -item[1]):
                scaled = amount / Decimal(1024) ** power
                if scaled == scaled.to_integral_value() and (power == 0 or scaled >= 1):
                    return f"{int(scaled)}{unit}"
        number, suffix = amount, ""
    amount = number * Decimal(10) ** DECIMAL[suffix]
    for unit, power in sorted(DECIMAL.items(), key=lambda item: -item[1]):
        scaled = amount / Decimal(10) ** power
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{unit}"
    return str(value)


def _quantity_paths(obj: Mapping[str, Any]) -> Iterable[tuple[Any, str]]:
    """(container, key) of every quantity in the kinds the operator renders."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        pod = ((spec.get("template") or {}).get("spec")) or {}
        for container in pod.get("containers") or []:
            for part in ("requests", "limits"):
                values = (container.get("resources") or {}).get(part) or {}
                yield from ((values, key) for key in values)
        for volume in pod.get("volumes") or []:
            if "sizeLimit" in (volume.get("emptyDir") or {}):
                yield volume["emptyDir"], "sizeLimit"
    if kind == "HorizontalPodAutoscaler":
        for metric in spec.get("metrics") or []:
            for source in metric.values():
                target = source.get("target") if isinstance(source, dict) else None
                for key in ("averageValue", "value"):
                    if target and key in target:
                        yield target, key


def normalise(obj: Obj) -> Obj:
    result = copy.deepcopy(obj)
    for container, key in _quantity_paths(result):
        container[key] = canonical_quantity(container[key])
    return result


def drop(obj: Obj, dropped: Mapping[str, Iterable[Path]]) -> Obj:
    """``obj`` without the fields this server version does not know."""
    result = copy.deepcopy(obj)
    for path in dropped.get(str(obj.get("kind")), ()):
        node: Any = result
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return result


def with_defaults(obj: Obj) -> Obj:
    """The defaults a real API server fills in for the kinds the operator renders."""
    result = copy.deepcopy(obj)
    spec = result.get("spec")
    if result.get("kind") == "Deployment" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        pod = spec.get("template", {}).get("spec", {})
        pod.setdefault("dnsPolicy", "ClusterFirst")
        pod.setdefault("restartPolicy", "Always")
        pod.setdefault("schedulerName", "default-scheduler")
        for container in pod.get("containers") or []:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    container[probe].setdefault("timeoutSeconds", 1)
                    container[probe].setdefault("successThreshold", 1)
                    container[probe].get("httpGet", {}).setdefault("scheme", "HTTP")
    if result.get("kind") == "Service" and isinstance(spec, dict):
        spec.setdefault("clusterIP", "10.96.0.10")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    return result


def merge_patch(obj: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(obj) if isinstance(obj, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


SERVER_FIELDS = {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"}


def fields(obj: Any, prefix: Path = ()) -> set[Path]:
    """The leaf paths of an applied configuration (lists are leaves)."""
    if isinstance(obj, Mapping) and obj:
        found: set[Path] = set()
        for key, value in obj.items():
            if prefix == ("metadata",) and key in SERVER_FIELDS:
                continue
            found |= fields(value, (*prefix, str(key)))
        return found
    return {prefix}


def _remove(obj: Obj, path: Path) -> None:
    """Remove ``path``, and every map on the way that this leaves empty."""
    parents: list[tuple[dict[str, Any], str]] = []
    node: Any = obj
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        parents.append((node, part))
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, key in reversed(parents):
        if parent[key] != {}:
            break
        del parent[key]


def _merge(live: Any, config: Any, path: Path = ()) -> Any:
    if path == ("metadata", "ownerReferences") and isinstance(live, list):
        merged = {ref.get("uid"): ref for ref in live}
        merged.update({ref.get("uid"): ref for ref in config})
        return list(merged.values())
    if isinstance(live, Mapping) and isinstance(config, Mapping):
        result = dict(live)
        for key, value in config.items():
            result[key] = _merge(live.get(key), value, (*path, str(key)))
        return result
    return copy.deepcopy(config)


class Invalid(Exception):
    """422: the API server refuses the object."""


def apply(
    live: Obj | None, config: Obj, manager: str, managed: dict[str, set[Path]]
) -> tuple[Obj, dict[str, set[Path]]]:
    """Server-side apply of ``config`` by ``manager`` (force=true); the new object and owners."""
    new_fields = fields(config)
    managed = {name: set(paths) for name, paths in managed.items()}
    if live is None:
        result = copy.deepcopy(config)
    else:
        result = copy.deepcopy(live)
        others = set().union(*(p for name, p in managed.items() if name != manager))
        for path in sorted(managed.get(manager, set()) - new_fields - others, reverse=True):
            _remove(result, path)
        result = _merge(result, config)
    controllers = [
        ref
        for ref in result.get("metadata", {}).get("ownerReferences") or []
        if ref.get("controller")
    ]
    if len(controllers) > 1:
        raise Invalid(
            "metadata.ownerReferences: Only one reference can have Controller set to true"
        )
    for name in managed:
        if name != manager:
            managed[name] -= new_fields
    managed[manager] = new_fields
    return result, managed


def changed_paths(before: Any, after: Any, prefix: Path = ()) -> set[Path]:
    """Leaf paths whose value differs between two objects (for ownership after an update)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found: set[Path] = set()
        for key in set(before) | set(after):
            found |= changed_paths(before.get(key), after.get(key), (*prefix, str(key)))
        return found
    return set() if before == after else {prefix}


def structural_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """What the API server does to a stored object with a structural schema's defaults."""
    if isinstance(value, dict):
        result = dict(value)
        for key, child in (schema.get("properties") or {}).items():
            if key not in result and "default" in child:
                result[key] = copy.deepcopy(child["default"])
            if key in result:
                result[key] = structural_defaults(result[key], child)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in set(result) - set(schema.get("properties") or {}):
                result[key] = structural_defaults(result[key], extra)
        return result
    if isinstance(value, list):
        return [structural_defaults(item, schema.get("items") or {}) for item in value]
    return value


def fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Leaf paths as ``managedFields[].fieldsV1`` (``{"f:spec": {"f:replicas": {}}}``)."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def paths_of(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The leaf paths a ``fieldsV1`` tree claims (list items, ``k:``/``v:``, own the list)."""
    found: set[Path] = set()
    children = {k: v for k, v in tree.items() if k != "."}
    if not children or any(not key.startswith("f:") for key in children):
        return {prefix} if prefix else set()
    for key, value in children.items():
        found |= paths_of(value, (*prefix, key[2:]))
    return found
