"""A local, watch-fed copy of one kind of object: what the controller reads instead of the API.

An :class:`Informer` lists its objects once, then follows a watch from the
list's resourceVersion, renewing the watch when the server ends it (every few
minutes) and listing again only when the server says the version is too old
(410 Gone) or the connection broke. Steady state costs one watch request per
kind per renewal, whatever the number of objects: that is what lets status
follow the cluster within seconds while the request rate per route stays
near zero.

Every change is handed to ``on_change(old, new)`` (``new`` is None for a
deletion), which the controller turns into "reconcile this route". A
``transform`` may shrink objects before they are stored: the Secret informer
keeps the key names and drops the values, which never stay in memory.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from modelroute.operator.kube import ApiError, Kind, Kube, WatchStream

log = logging.getLogger("modelroute.operator")

Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, name
OnChange = Callable[[Obj | None, Obj | None], None]

RETRY_MIN = 0.5
RETRY_MAX = 30.0


def _version(obj: Mapping[str, Any]) -> int | None:
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


def _newer(stored: Mapping[str, Any], incoming: Mapping[str, Any]) -> bool:
    """Whether ``stored`` is a later version of the same object than ``incoming``.

    resourceVersions are opaque, but every API server numbers them from etcd's
    revision; where either is not a number, nothing is assumed.
    """
    same = (stored.get("metadata") or {}).get("uid") == (incoming.get("metadata") or {}).get("uid")
    a, b = _version(stored), _version(incoming)
    return same and a is not None and b is not None and a > b


def key_of(obj: Mapping[str, Any]) -> Key:
    metadata = obj["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])


class Informer:
    """List + watch one kind (in one namespace, or all) into a dict; stop with :meth:`stop`."""

    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        namespace: str | None,
        on_change: OnChange,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Callable[[Obj], Obj] | None = None,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._on_change = on_change
        self._transform = transform or (lambda obj: obj)
        self._store: dict[Key, Obj] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()
        """Set once the first list is in the store: reads before that may miss objects."""

    # -- reading -------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._store.get((namespace, name))

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._store.values())

    def put(self, obj: Obj) -> None:
        """Store what a write just returned, ahead of its watch event (read-your-writes)."""
        self._set(self._transform(obj), notify=False)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._store.pop((namespace, name), None)

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{self.kind.plural}", daemon=True
        )
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = RETRY_MIN
        version = ""
        while not self._stopped.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._follow(version)
                delay = RETRY_MIN
            except ApiError as exc:
                if self._stopped.is_set():
                    return
                if exc.status == 410:  # too old: list again, at once
                    version = ""
                    continue
                log.warning("watching %s: %s; again in %.1fs", self.kind.plural, exc, delay)
                version = ""
                self._stopped.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, RETRY_MAX)
            except Exception as exc:  # a broken stream: start over from a fresh list
                if self._stopped.is_set():
                    return
                log.warning("watching %s broke: %r; again in %.1fs", self.kind.plural, exc, delay)
                version = ""
                self._stopped.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, RETRY_MAX)

    def _list(self) -> str:
        items, version = self.kube.list(
            self.kind, self.namespace, self.label_selector, self.field_selector
        )
        fresh = {key_of(obj): self._transform(obj) for obj in items}
        with self._lock:
            old, self._store = self._store, dict(fresh)
        for key, obj in fresh.items():
            if old.get(key) != obj:
                self._on_change(old.get(key), obj)
        for key, gone in old.items():
            if key not in fresh:
                self._on_change(gone, None)
        self.synced.set()
        return version

    def _follow(self, version: str) -> str:
        """Apply watch events until the server ends the stream; the last version seen."""
        stream = self.kube.watch(
            self.kind, self.namespace, version, self.label_selector, self.field_selector
        )
        self._stream = stream
        try:
            if self._stopped.is_set():
                return version
            for event in stream:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise ApiError(code, str(obj.get("reason", "")), str(obj.get("message", "")))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                obj.setdefault("apiVersion", self.kind.api_version)
                obj.setdefault("kind", self.kind.kind)
                if kind == "DELETED":
                    self._delete(obj)
                else:
                    self._set(self._transform(obj), notify=True)
        finally:
            self._stream = None
            stream.close()
        return version

    def _set(self, obj: Obj, notify: bool) -> None:
        key = key_of(obj)
        with self._lock:
            old = self._store.get(key)
            if notify and old is not None and _newer(old, obj):
                return  # an event older than what a write already returned
            self._store[key] = obj
        if notify and old != obj:
            self._on_change(old, obj)

    def _delete(self, obj: Obj) -> None:
        key = key_of(obj)
        with self._lock:
            old = self._store.pop(key, None)
        self._on_change(old, None)
