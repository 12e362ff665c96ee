"""Read a ModelRoute manifest (the YAML a user would ``kubectl apply``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelroute.spec.model import API_VERSION, KIND, ModelRoute, RouteSpec
from modelroute.spec.schema import SpecError, SpecInvalid, parse_section
from modelroute.spec.validate import check_names, check_references


def parse_route(document: Any) -> ModelRoute:
    """Validate one ModelRoute document; raise SpecInvalid listing every problem."""
    if not isinstance(document, dict):
        raise SpecInvalid([SpecError("", "a ModelRoute manifest must be a mapping")])
    errors: list[SpecError] = []
    if document.get("apiVersion") != API_VERSION:
        errors.append(
            SpecError("apiVersion", f"must be {API_VERSION!r}, got {document.get('apiVersion')!r}")
        )
    if document.get("kind") != KIND:
        errors.append(SpecError("kind", f"must be {KIND!r}, got {document.get('kind')!r}"))
    metadata = document.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        errors.append(SpecError("metadata.name", "required field is missing"))
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    spec, spec_errors = parse_section(RouteSpec, document.get("spec"), "spec")
    errors += spec_errors
    if spec is not None:
        errors += check_references(spec)
        if isinstance(name, str) and name:
            errors += check_names(name, spec)
    if errors or spec is None:
        raise SpecInvalid(errors)
    return ModelRoute(name=str(name), namespace=namespace, spec=spec)


def read_route_document(path: str | Path) -> dict[str, Any]:
    """The single ModelRoute document in a YAML file (other kinds are skipped)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise SpecInvalid([SpecError(str(path), f"cannot read file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise SpecInvalid(
            [SpecError(str(path), f"not valid UTF-8 (byte {exc.start})")]
        ) from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise SpecInvalid([SpecError(str(path), f"not valid YAML: {exc}")]) from exc
    routes = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == KIND]
    if len(routes) == 1:
        return routes[0]
    if not routes and len(documents) == 1 and isinstance(documents[0], dict):
        return documents[0]  # let parse_route say what is wrong with it
    found = "no ModelRoute" if not routes else f"{len(routes)} ModelRoutes"
    raise SpecInvalid(
        [SpecError(str(path), f"expected exactly one ModelRoute document, found {found}")]
    )


def load_route(path: str | Path) -> ModelRoute:
    """Read and validate the ModelRoute in ``path``."""
    return parse_route(read_route_document(path))
