"""A kustomization's objects, as ``kubectl apply -k`` would send them, for the real-cluster tier.

Only what the repository's kustomizations use is read: ``resources`` (files, and directories
holding a kustomization, recursively) and ``configMapGenerator`` (``files``; the name is kept
without kustomize's hash suffix, so the pods' references stay valid without rewriting them).
``images`` and ``patches`` of integration/kind's overlay only change the image tag and pull
policy, which the tier's kubelet does not read; any other field is refused, so a new one
cannot be ignored silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]
UNUSED_HERE = {"images", "patches"}
"""Fields read by kustomize that change nothing the tier's kubelet reads (see module doc)."""
KNOWN = {"apiVersion", "kind", "resources", "configMapGenerator", *UNUSED_HERE}


def objects(directory: Path) -> list[JSON]:
    """Every object of the kustomization in ``directory``, in the order it lists them."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: unsupported fields {sorted(unknown)}")
    found: list[JSON] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            found += objects(path)
        else:
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in spec.get("configMapGenerator", []):
        found.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"],
                         **({"namespace": generator["namespace"]}
                            if "namespace" in generator else {})},
            "data": {Path(f).name: (directory / f).read_text() for f in generator["files"]},
        })  # fmt: skip
    return found
