"""The public façade, the import layering rule and the package list."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import rtrun

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"runtime": "rtrun", "actors": "rtrun.actors", "drivers": "rtrun.drivers", "models": "rtrun.models"}


def test_all_is_exact_and_sorted() -> None:
    public = {n for n in dir(rtrun) if not n.startswith("_")}
    assert sorted(rtrun.__all__) == list(rtrun.__all__)
    assert set(rtrun.__all__) <= public
    for name in rtrun.__all__:
        assert getattr(rtrun, name) is not None


@pytest.mark.parametrize(
    "name", ["SendPort", "ReceivePort", "OutputPort", "ActorContext", "Graph", "ChildSpec"]
)
def test_handles_are_final(name: str) -> None:
    assert getattr(getattr(rtrun, name), "__final__", False), f"rtrun.{name} must be @final"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = FOLDERS[path.relative_to(ROOT).parts[0]]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                parts = [package, *path.relative_to(ROOT).parts[1:-1]]
                base = ".".join(parts[: len(parts) - node.level + 1])
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("runtime"), ids=lambda p: str(p.relative_to(ROOT)))
def test_kernel_imports_no_robot_packages(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("rtrun.actors", "rtrun.drivers", "rtrun.models"))}
    assert not bad, f"the kernel must not import {bad}"


@pytest.mark.parametrize(
    "path", _modules("drivers") + _modules("models"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_drivers_and_models_stay_synchronous_and_kernel_free(path: Path) -> None:
    own = FOLDERS[path.relative_to(ROOT).parts[0]]
    bad = {
        m
        for m in _imports(path)
        if m.startswith("anyio") or (m.startswith("rtrun") and not m.startswith(own))
    }
    assert not bad, f"{path.name} must not import {bad} (drivers/models are synchronous and kernel-free)"


def test_import_rtrun_is_light() -> None:
    code = (
        "import sys, rtrun, rtrun.actors, rtrun.drivers, rtrun.models, rtrun.testing\n"
        "heavy = [m for m in ('torch', 'zenoh', 'mujoco', 'cv2', 'av', 'pyarrow', 'lerobot') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import rtrun pulled in heavy modules: {out}"


def test_pyproject_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *rel]))
    assert found == listed
