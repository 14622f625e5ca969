"""What the deployment tests share: the repository's paths and the external tools
(hadolint, kubectl), found or skipped with a message (a failure under ``CI=true``)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
# The Kubernetes version the manifests are validated against (kubernetes-validate's
# schemas): the oldest release still supported upstream that we target.
KUBERNETES_VERSION = "1.32.0"


def require_tool(name: str, install: str) -> str:
    """The path of ``name``: on PATH or next to this interpreter (the virtual
    environment's bin/); otherwise skip, or fail under CI=true."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is not installed"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: it is required)")
    pytest.skip(f"{message}; {install} to run this test")


def require_module(name: str, install: str) -> None:
    """Like :func:`require_tool`, for a Python package of the dev extras."""
    if importlib.util.find_spec(name) is not None:
        return
    message = f"the Python package {name} is not installed"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: it is required)")
    pytest.skip(f"{message}; {install} to run this test")
