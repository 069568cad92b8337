"""docs/architecture.md stays the map of the whole package: every module is named in its module map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "patroni_citus"


def module_map() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return text.split("## Module map", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(
    "module",
    sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "standin" not in path.parts
    ),
)
def test_every_module_is_on_the_map(module: str) -> None:
    assert re.search(rf"`{re.escape(Path(module).name)}`", module_map()), f"{module} is not in the module map"


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_module_names_its_job_in_its_first_docstring_line(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and docstring.splitlines()[0].strip(), f"{path.name}: no docstring naming its job"
