"""Packages of the gateway meet only through public names; test suites only through shared helpers.

A name with a leading underscore is private to its package: another package
importing it couples to internals its owner may change at any time. Likewise a
test suite importing another suite's modules breaks when that suite is changed;
helpers used by several suites live in :mod:`runinfra_gateway.testing`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import runinfra_gateway

PACKAGE_ROOT = Path(runinfra_gateway.__file__).parent
TESTS_ROOT = Path(__file__).resolve().parent.parent


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


def test_no_test_suite_imports_another_suites_modules() -> None:
    suites = {path.name for path in TESTS_ROOT.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    found = []
    for suite in sorted(suites):
        for path in sorted((TESTS_ROOT / suite).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in suites - {suite} or top == "tests":  # another suite, by either path
                        found.append(f"{path.relative_to(TESTS_ROOT)}: imports {name}")
    assert suites >= {"core", "money", "webhooks"}
    assert found == []
