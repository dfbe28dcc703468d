"""`make codegen-check` must catch a schema edit that was not regenerated."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_project(tmp_path: Path) -> Path:
    for name in ("schemas", "codegen", "contract_models", "events", "messaging"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codegen", "--check"], cwd=root, capture_output=True, text=True)


def test_committed_models_match_the_schemas(tmp_path):
    result = check(copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_avro_edit_without_regeneration_fails(tmp_path):
    root = copy_project(tmp_path)
    schema = root / "schemas/avro/OrderCreated.avsc"
    schema.write_text(schema.read_text().replace('"name": "customerName"', '"name": "customerFullName"'))
    result = check(root)
    assert result.returncode == 1
    assert "events.py" in result.stdout and "make codegen" in result.stderr


def test_openapi_edit_without_regeneration_fails(tmp_path):
    root = copy_project(tmp_path)
    spec = root / "schemas/openapi/order-service.yaml"
    spec.write_text(spec.read_text().replace("maximum: 10000", "maximum: 20000"))
    result = check(root)
    assert result.returncode == 1
    assert "order_api.py" in result.stdout


def test_generation_is_deterministic(tmp_path):
    root = copy_project(tmp_path)
    subprocess.run([sys.executable, "-m", "codegen"], cwd=root, check=True, capture_output=True)
    for path in (ROOT / "contract_models").glob("*.py"):
        assert (root / "contract_models" / path.name).read_text() == path.read_text(), path.name
