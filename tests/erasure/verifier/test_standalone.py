"""The offline verifier as an auditor runs it: in a virtualenv holding only `cryptography`, from a copy of
erasure/verifier/ alone, and as `python -m erasure.verify` from erasure/'s two entry files plus that folder."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.erasure.verifier.test_verify import World

ROOT = Path(__file__).resolve().parents[3]
VERIFIER = ROOT / "erasure" / "verifier"


def _pinned_cryptography() -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if re.match(r"cryptography==", line.strip(), re.IGNORECASE):
            return line.strip()
    raise AssertionError("requirements.txt pins no cryptography")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A virtualenv with nothing but cryptography (and what it needs) installed."""
    where = tmp_path_factory.mktemp("auditor-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = where / "bin" / "python"
    # The pip cache of this machine serves the wheel when it is there; otherwise PyPI does.
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                _pinned_cryptography()], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


@pytest.fixture(scope="module")
def auditor_files(tmp_path_factory) -> tuple[Path, World]:
    world = World()
    folder = tmp_path_factory.mktemp("auditor-files")
    (folder / "jwks.json").write_text(json.dumps(world.jwks))
    (folder / "bundle.json").write_text(json.dumps(world.bundle(with_owner=True)))
    forged = world.bundle()
    forged["log"]["leaf_index"] += 1
    (folder / "forged.json").write_text(json.dumps(forged))
    return folder, world


def _run(python: Path, cwd: Path, module: str, files: Path, bundle: str, log_key: str) -> subprocess.CompletedProcess:
    """`python -m module` in the auditor's folder: no PYTHONPATH, so only the venv and that folder are importable."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([str(python), "-m", module, str(files / bundle), "--jwks", str(files / "jwks.json"),
                           "--log-key", log_key], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_bare_virtualenv_has_nothing_of_the_service(bare_python):
    probe = subprocess.run([str(bare_python), "-I", "-c", "import importlib.util as u; print(*[m for m in "
                            "('flask', 'sqlalchemy', 'joserfc', 'authlib', 'cryptography') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["cryptography"], probe.stdout + probe.stderr


def test_a_copy_of_the_verifier_folder_alone_checks_a_bundle(bare_python, auditor_files, tmp_path):
    files, world = auditor_files
    shutil.copytree(VERIFIER, tmp_path / "verifier", ignore=shutil.ignore_patterns("__pycache__"))
    good = _run(bare_python, tmp_path, "verifier", files, "bundle.json", world.log_key)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("VALID receipt " + world.claims["receipt_id"])
    assert "owner proof: ok" in good.stdout
    forged = _run(bare_python, tmp_path, "verifier", files, "forged.json", world.log_key)
    assert forged.returncode == 1, forged.stdout + forged.stderr
    assert forged.stdout.startswith("INVALID")


def test_python_m_erasure_verify_needs_only_the_entry_files_and_the_folder(bare_python, auditor_files, tmp_path):
    files, world = auditor_files
    (tmp_path / "erasure").mkdir()
    for name in ("__init__.py", "verify.py"):
        shutil.copy(ROOT / "erasure" / name, tmp_path / "erasure" / name)
    shutil.copytree(VERIFIER, tmp_path / "erasure" / "verifier", ignore=shutil.ignore_patterns("__pycache__"))
    good = _run(bare_python, tmp_path, "erasure.verify", files, "bundle.json", world.log_key)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("VALID receipt ")


def test_the_receipt_page_names_every_file_the_auditor_needs():
    """The page lists the verifier folder's files; the list must be the folder as it is."""
    page = (ROOT / "app" / "templates" / "receipt.html").read_text()
    shipped = sorted(p.name for p in VERIFIER.glob("*.py"))
    named = sorted(re.findall(r"<code>([a-z_]+\.py)</code>", page))
    assert named == shipped
