"""Packaging: every package is installed, the shipped configs travel inside the wheel, the version is
recorded in every manifest, and the commands find their configs from any folder."""
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

import raygan
from raygan.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]


def test_every_package_under_raygan_is_listed_for_installation():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "raygan").rglob("__init__.py")}
    assert listed == found | {"raygan.configs"}


def test_the_wheel_carries_the_code_and_the_shipped_configs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("raygan-*.whl")
    assert wheel.name.startswith(f"raygan-{raygan.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.name for p in (REPO / "configs").glob("*.yaml")}
    assert {f"raygan/configs/{c}" for c in configs} <= names
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "raygan").rglob("*.py")}
    assert modules <= names


def test_demo_resolves_its_config_from_another_folder(tmp_path):
    out = subprocess.run([sys.executable, "-m", "raygan", "demo", "--dry-run"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "experiment: demo" in out.stdout and "name: digits" in out.stdout


def test_version_flag_and_manifest_provenance(tmp_path):
    out = subprocess.run([sys.executable, "-m", "raygan", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"raygan {raygan.__version__}"
    run = RunFolder(tmp_path / "run")
    run.update_manifest(note="x")
    made_by = run.manifest()["raygan"]
    assert made_by["version"] == raygan.__version__
    assert made_by["git_commit"] is None or len(made_by["git_commit"]) == 40
