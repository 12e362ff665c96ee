"""What every modelroute pod must look like: the "restricted" Pod Security Standard and more.

One checker for the router Deployments the operator renders and for the operator's own
Deployment (manifests/ and the chart), so the rules cannot drift between them:

* the pod runs as a non-root uid and gid (the image's user, 65532, where the caller
  says so), with the runtime's default seccomp profile;
* every container, init containers included, drops every capability, cannot gain
  privileges and has a read-only root filesystem;
* whatever a container may write is an emptyDir of bounded size (``/tmp``); config and
  Secrets are mounted read-only.
"""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]

CONTAINER_HARDENING = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def containers(pod: Manifest) -> list[Manifest]:
    found: list[Manifest] = [*pod.get("initContainers", []), *pod["containers"]]
    assert found, "a pod without containers"
    return found


def assert_hardened(deployment: Manifest, run_as: int | None = None) -> None:
    """Fail naming the first rule ``deployment``'s pod template breaks."""
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    security = pod.get("securityContext", {})
    assert security.get("runAsNonRoot") is True, name
    assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, name
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        assert isinstance(security.get(key), int) and security[key] > 0, (name, key)
        if run_as is not None:
            assert security[key] == run_as, (name, key)
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")

    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for container in containers(pod):
        where = f"{name}/{container['name']}"
        context = container.get("securityContext", {})
        assert CONTAINER_HARDENING.items() <= context.items(), (where, context)
        assert not context.get("privileged"), where
        assert not context.get("capabilities", {}).get("add"), where
        assert context.get("runAsUser", security["runAsUser"]) != 0, where
        mounts = container.get("volumeMounts", [])
        assert any(m["mountPath"] == "/tmp" for m in mounts), f"{where}: no writable /tmp"
        for mount in mounts:
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), f"{where}: unbounded emptyDir"
            else:
                assert mount.get("readOnly") is True, f"{where}: {mount['mountPath']} writable"
