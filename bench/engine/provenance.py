"""What a result needs to be reproduced: package versions, code commit, machine, command."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bench.paths import REPO_ROOT

_PACKAGES = ("lens-bench", "torch", "transformers", "sae-lens", "lm-eval", "numpy", "scipy", "pluggy")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


_CODE_PATHS = ("bench", "plugins", "tasks", "pyproject.toml")


def git_commit() -> str | None:
    """HEAD of the lens-bench checkout, with '+dirty' when its code or tasks have uncommitted changes;
    None for an installed copy (site-packages may sit inside some other repository: never report that one's)."""
    if not (REPO_ROOT / ".git").exists() or not (REPO_ROOT / "pyproject.toml").is_file():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # only what determines results: written results and leaderboards do not make code dirty
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--", *_CODE_PATHS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None  # an installed copy, not a checkout
    return head + ("+dirty" if dirty else "")


def environment(extra_packages: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "versions": package_versions(extra_packages),
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command": sys.argv,
    }
