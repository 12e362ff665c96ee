"""The modelroute operator: turns ModelRoute resources into per-region routers.

The control plane in four layers, each usable without the next:

* :mod:`~modelroute.operator.crd` publishes the ModelRoute API (schema + CEL rules),
  generated from the one spec model in :mod:`modelroute.spec`;
* :mod:`~modelroute.operator.render` turns a ModelRoute into child objects, purely;
* :mod:`~modelroute.operator.reconcile` converges a namespace to that set and computes
  status through :mod:`~modelroute.operator.kube`, a deliberately small API client;
* :mod:`~modelroute.operator.handlers` wires reconcile into kopf, and
  :mod:`~modelroute.operator.commands` is what ``modelroute render`` and
  ``modelroute operator`` call.
"""
