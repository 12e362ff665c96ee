"""An in-memory cluster for :func:`~modelroute.operator.reconcile.reconcile`, with an API
server's write semantics (:mod:`tests.operator.semantics`): server-side apply, field
managers, normalisation, defaults, dropped fields, uids and resourceVersions."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Collection, Iterable
from typing import Any

from modelroute.operator.converge import Live, Lookup, Snapshot, controlled_by, snapshot_of
from modelroute.operator.kube import ApiError, Kind, kind_of
from modelroute.operator.render import Manifest
from tests.operator import semantics
from tests.operator.semantics import Path

Key = tuple[str, str]  # kind, name


class MemoryCluster:
    """One namespace's objects; records every write as (verb, kind, name)."""

    def __init__(self, dropped: dict[str, list[Path]] | None = None) -> None:
        self.objects: dict[Key, Live] = {}
        self.managed: dict[Key, dict[str, set[Path]]] = {}
        self.secrets: dict[str, list[str]] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.reads: list[Key] = []
        self.refuse: dict[Key, ApiError] = {}
        self.refuse_reads: ApiError | None = None
        self.dropped = dropped or {}
        self.remember = True  # False: a restarted operator, with no snapshots
        self._versions = itertools.count(1)

    def secret_keys(self, name: str) -> Collection[str] | None:
        return self.secrets.get(name)

    def children(self, uid: str) -> Iterable[Live]:
        return [copy.deepcopy(o) for o in self.objects.values() if controlled_by(o, uid)]

    @property
    def lookup(self) -> Lookup:
        def find(kind: Kind, name: str) -> Live | None:
            if self.refuse_reads is not None:
                raise self.refuse_reads
            self.reads.append((kind.kind, name))
            found = self.objects.get((kind.kind, name))
            return copy.deepcopy(found) if found is not None else None

        return find

    def snapshot(self, uid: str) -> Snapshot | None:
        return self.snapshots.get(uid) if self.remember else None

    def apply(self, obj: Manifest) -> Live:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in self.refuse:
            raise self.refuse[key]
        live = self.objects.get(key)
        config = semantics.drop(semantics.normalise(copy.deepcopy(obj)), self.dropped)
        new, self.managed[key] = semantics.apply(
            live, config, "modelroute", self.managed.get(key, {})
        )
        new = semantics.with_defaults(new)
        metadata = new["metadata"]
        if live is None:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = f"2025-01-01T00:00:{next(self._versions):02d}Z"
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[key] = new
        self.writes.append(("apply", key[0], key[1]))
        self.snapshots[metadata["uid"]] = snapshot_of(obj, new)
        return copy.deepcopy(new)

    def delete(self, obj: Live) -> None:
        key = (obj["kind"], obj["metadata"]["name"])
        assert self.objects[key]["metadata"]["uid"] == obj["metadata"]["uid"]
        del self.objects[key]
        self.writes.append(("delete", key[0], key[1]))

    def edit(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        """A hand edit (``kubectl edit``): a merge patch by another field manager."""
        key = (kind, name)
        before = self.objects[key]
        after = semantics.merge_patch(before, patch)
        changed = semantics.changed_paths(before, after)
        for manager in self.managed.get(key, {}).values():
            manager -= changed
        self.managed.setdefault(key, {}).setdefault("kubectl-edit", set()).update(changed)
        after["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = after

    def put(self, obj: Live) -> None:
        """An object someone else created."""
        self.objects[obj["kind"], obj["metadata"]["name"]] = copy.deepcopy(obj)

    def kind(self, obj: Manifest) -> Kind:
        return kind_of(obj)
