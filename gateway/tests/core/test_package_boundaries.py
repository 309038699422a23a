"""Packages of the gateway meet only through public names.

A name with a leading underscore is private to its package: another package
importing it couples to internals its owner may change at any time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import runinfra_gateway

PACKAGE_ROOT = Path(runinfra_gateway.__file__).parent


def _part(module: str) -> str:
    """The gateway's sub-package (or top-level module) that ``runinfra_gateway.<module>`` belongs to."""
    return module.split(".")[1] if module.count(".") else module


def _private_imports_across_packages() -> list[str]:
    found = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
        importer = _part(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if not node.module.startswith("runinfra_gateway.") or _part(node.module) == importer:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{relative}: from {node.module} import {alias.name}")
    return found


def test_no_package_imports_another_packages_private_names() -> None:
    assert _private_imports_across_packages() == []
