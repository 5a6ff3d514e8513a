"""The shape of the house: which package may import which (see STYLE.md's "two worlds, one contract")."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Package -> the project packages it must never import.
FORBIDDEN = {
    "modelfile": {"training", "recognition", "web", "app"},
    "training": {"recognition", "web", "app"},
    "recognition": {"training", "web", "app", "flask", "werkzeug", "gunicorn"},
    "web": {"training"},
}


def imported(path):
    """The top-level names a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_their_world_allows(package):
    crossings = {f"{path.relative_to(ROOT)} imports {name}"
                 for path in (ROOT / package).rglob("*.py") for name in imported(path) & FORBIDDEN[package]}
    assert not crossings, sorted(crossings)


def test_no_module_edits_sys_path():
    edits = [str(path.relative_to(ROOT)) for folder in ("app.py", "web", "recognition", "training", "modelfile",
                                                       "scripts", "tests")
             for path in ([ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py"))
             if "sys.path.insert" in path.read_text() and path.name != "test_layout.py"]
    assert not edits, edits
