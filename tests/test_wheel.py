"""The wheel holds the whole package: every module, its data and its commands, imported from the wheel alone.

setup.cfg's package list is kept by hand, so a package it misses is left out of the wheel while every
test run from the checkout still passes. This test builds the wheel from a copy of the sources, unpacks
it and imports every module of edge/, trainer/ and converters/ from there, in a Python that sees the
unpacked wheel and the site-packages' third-party libraries but neither the checkout nor the editable
install (``-I -S``: no environment variables, no ``.pth`` files, so no editable finder).

The expected modules and data files come from the source tree, so a new package or data file that
setup.cfg does not list fails here.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Source folder -> the import name setup.cfg's package_dir gives it.
PACKAGES = {"edge": "maskipy.edge", "trainer": "maskipy.trainer", "converters": "maskipy.converters"}
# Data the installed gate needs (relative to a source folder): each pattern must match and ship.
PACKAGE_DATA = ("edge/models/default/*", "edge/models/detectors/*/*", "edge/web/status.html",
                "edge/config.example.ini")
# Non-Python files in the source folders that are used from a checkout only (README, Makefile).
CHECKOUT_ONLY = {"edge/thorough-detector.ini", "edge/hall-detector.ini", "edge/blazeface-detector.ini",
                 "converters/default-model.ini"}
# Without TensorFlow (not in the [edge] extra) trainer and converters modules may fail on it alone;
# never in CI, which installs it.
TENSORFLOW = importlib.util.find_spec("tensorflow") is not None or bool(os.environ.get("CI"))
TF_MODULES = ("tensorflow", "keras", "tf_keras")

IMPORT_ALL = r"""
import importlib, json, sys, traceback
wheel, extra, modules, allowed = json.loads(sys.argv[1])
sys.path[:0] = [wheel]
sys.path += extra
result = {"files": {}, "errors": {}, "tolerated": {}, "scripts": {}}
for name in modules:
    try:
        result["files"][name] = importlib.import_module(name).__file__
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in allowed:
            result["tolerated"][name] = str(exc)
        else:
            result["errors"][name] = traceback.format_exc()
    except Exception:
        result["errors"][name] = traceback.format_exc()
from importlib.metadata import distributions
(dist,) = distributions(name="maskipy", path=[wheel])
for ep in dist.entry_points:
    try:
        module = importlib.import_module(ep.module)
        for part in ep.attr.split("."):
            module = getattr(module, part)
        result["scripts"][ep.name] = callable(module)
    except ModuleNotFoundError as exc:
        result["scripts"][ep.name] = "tolerated" if (exc.name or "").split(".")[0] in allowed else repr(exc)
    except Exception as exc:
        result["scripts"][ep.name] = repr(exc)
result["path"] = list(sys.path)
print(json.dumps(result))
"""


def source_files(pattern: str = "*") -> list[str]:
    """Files under the package source folders, as repository-relative POSIX paths (no bytecode)."""
    found = []
    for folder in PACKAGES:
        for path in sorted((REPO / folder).rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.append(path.relative_to(REPO).as_posix())
    return found


def in_wheel(source: str) -> str:
    """``edge/web/status.html`` -> ``maskipy/edge/web/status.html``."""
    folder, _, rest = source.partition("/")
    return "/".join([*PACKAGES[folder].split("."), rest])


def module_name(source: str) -> str:
    folder, _, rest = source.removesuffix(".py").partition("/")
    parts = [*PACKAGES[folder].split("."), *rest.split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_version() -> str:
    tree = ast.parse((REPO / "edge" / "__init__.py").read_text(encoding="utf-8"))
    return next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", "") == "__version__" for t in node.targets))


def console_scripts() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return sorted(line.split("=")[0].strip() for line in lines if "=" in line)


def offline_build() -> bool:
    """Whether this Python can build the wheel itself (else pip fetches setuptools from PyPI, as for -e)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        setuptools = tuple(int(part) for part in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    # setuptools < 70.1 builds wheels with the separate ``wheel`` package.
    return setuptools >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the folder it is unpacked in): built from a clean copy, so no stale build/ leaks in."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for path in REPO.iterdir():  # the top-level files (setup.cfg, pyproject.toml, README.md, ...)
        if path.is_file():
            shutil.copy2(path, src / path.name)
    for folder in PACKAGES:
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    if offline_build():
        pip += ["--no-build-isolation", "--no-index"]
    built = subprocess.run([*pip, "-w", str(work / "dist"), str(src)], capture_output=True, text=True,
                           timeout=180, cwd=work)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (whl,) = (work / "dist").glob("maskipy-*.whl")
    unpacked = work / "site"
    with zipfile.ZipFile(whl) as archive:
        archive.extractall(unpacked)
    return whl, unpacked


def test_the_wheel_has_every_module_and_data_file_of_the_sources(wheel):
    whl, _ = wheel
    with zipfile.ZipFile(whl) as archive:
        names = set(archive.namelist())
    modules = source_files("*.py")
    assert len(modules) > 50
    missing = [path for path in modules if in_wheel(path) not in names]
    assert not missing, f"not in the wheel (a package setup.cfg does not list?): {missing}"
    for pattern in PACKAGE_DATA:
        matched = [path for path in source_files() if fnmatch(path, pattern)]
        assert matched, f"{pattern} matches nothing in the sources"
        assert all(in_wheel(path) in names for path in matched), (
            f"{pattern}: {[p for p in matched if in_wheel(p) not in names]} not in the wheel")
    others = [path for path in source_files() if not path.endswith(".py") and path not in CHECKOUT_ONLY]
    unlisted = [path for path in others if in_wheel(path) not in names]
    assert not unlisted, f"not in the wheel (add them to package_data, or to CHECKOUT_ONLY): {unlisted}"
    assert whl.name.startswith(f"maskipy-{source_version()}-"), "the wheel's version is not __version__"


def test_every_module_and_command_imports_from_the_wheel_alone(wheel, tmp_path):
    _, unpacked = wheel
    modules = [module_name(path) for path in source_files("*.py") if not path.endswith("/__main__.py")]
    # Third-party libraries only: site-packages without its .pth files (the editable install's finder).
    extra = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    allowed = [] if TENSORFLOW else list(TF_MODULES)
    result = subprocess.run([sys.executable, "-I", "-S", "-c", IMPORT_ALL,
                             json.dumps([str(unpacked), extra, modules, allowed])],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-5000:]
    found = json.loads(result.stdout.splitlines()[-1])
    assert not found["errors"], "\n".join(f"{name}:\n{error}" for name, error in found["errors"].items())
    assert set(found["files"]) | set(found["tolerated"]) == set(modules)
    outside = {name: file for name, file in found["files"].items()
               if not Path(file).resolve().is_relative_to(unpacked.resolve())}
    assert not outside, f"imported from outside the wheel: {outside}"
    if TENSORFLOW:
        assert not found["tolerated"]
    else:  # the [edge] install: only TensorFlow's modules may miss it
        assert all(not name.startswith("maskipy.edge") for name in found["tolerated"]), found["tolerated"]
    assert sorted(found["scripts"]) == console_scripts()
    assert all(ok is True or (ok == "tolerated" and not TENSORFLOW) for ok in found["scripts"].values()), (
        found["scripts"])
