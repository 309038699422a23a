"""The built wheel: only the runtime package, py.typed and the README/CHANGELOG/LICENSE metadata."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]


def test_wheel_contents_and_zero_dependencies(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv builds the wheel (scripts/setup installs it)"
    build = [uv, "build", "--wheel", str(SDK), "-o", str(tmp_path)]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    (wheel,) = tmp_path.glob("runinfra-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    runtime = sorted(name for name in names if not name.startswith(dist_info))
    package = SDK / "runinfra"
    source = sorted(f"runinfra/{path.name}" for path in package.iterdir() if path.suffix in (".py", ".typed"))
    assert runtime == source
    assert "runinfra/py.typed" in runtime
    metadata = sorted(name[len(dist_info) + 1 :] for name in names if name.startswith(dist_info))
    assert metadata == [
        "METADATA", "RECORD", "WHEEL", "extra_metadata/CHANGELOG.md", "extra_metadata/README.md", "licenses/LICENSE"
    ]  # fmt: skip
    text = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Requires-Dist" not in text
    assert "Requires-Python: >=3.9" in text

    target = tmp_path / "site"
    subprocess.run(
        [uv, "pip", "install", "--python", sys.executable, "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    installed = sorted(path.name for path in target.iterdir() if path.name != ".lock")  # uv's own lock file
    assert installed == ["runinfra", dist_info]
    probe = "import runinfra, sys; print(runinfra.__version__, runinfra.__file__)"
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert str(target) in result.stdout
