"""The lean core: `pip install awmp` brings what training, evaluation and reports need; Ray,
Weights & Biases, the TensorBoard app and video writing are extras, imported only inside the
functions that use them, and each says in one line which extra installs it.

(The built wheel installed alone into a fresh venv, training, evaluating and reporting from
there, is `make package-check`; the one-line refusals of each command are tested beside the
command: tests/test_track.py, tests/test_sweep.py, tests/test_ux.py.)
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# top-level module -> the extra that installs it (pyproject.toml's optional-dependencies)
OPTIONAL = {
    "ray": "cluster",
    "wandb": "track",
    "tensorboard": "tensorboard",
    "imageio_ffmpeg": "video",
}
DISTRIBUTION = {"ray": "ray", "wandb": "wandb", "tensorboard": "tensorboard",
                "imageio_ffmpeg": "imageio-ffmpeg"}  # fmt: skip


def _requirement_name(req: str) -> str:
    name = req
    for sep in "[<>=!~; ":
        name = name.split(sep)[0]
    return name.strip().lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_optional_packages_are_extras_not_core_dependencies():
    project = _project()
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for module, extra in OPTIONAL.items():
        dist = DISTRIBUTION[module]
        assert dist not in core, f"{dist} is a core dependency; it belongs to the {extra} extra"
        assert dist in {_requirement_name(r) for r in extras[extra]}, (extra, extras[extra])
    assert "docs" in extras  # `make docs` builds the site from this extra


def _module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported: everything outside function
    bodies (class bodies and `if`/`try` blocks at module level run at import too)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def _top_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name.split(".")[0] for a in node.names]
    return [] if node.level else [(node.module or "").split(".")[0]]


def test_no_module_imports_an_optional_package_at_import_time():
    eager = []
    for path in sorted((SRC / "awmp").rglob("*.py")):
        for node in _module_level_imports(ast.parse(path.read_text())):
            eager += [f"{path.relative_to(SRC)}:{node.lineno} imports {name}"
                      for name in _top_names(node) if name in OPTIONAL]  # fmt: skip
    assert not eager, "\n".join(eager)


def test_the_check_sees_eager_and_lazy_imports():
    tree = ast.parse(
        "import ray\nif x:\n    import wandb\ndef f():\n    import tensorboard\n"
        "class C:\n    import imageio_ffmpeg\n"
    )
    found = [n for node in _module_level_imports(tree) for n in _top_names(node)]
    assert sorted(found) == ["imageio_ffmpeg", "ray", "wandb"]


# Run in a fresh interpreter with every optional package made unimportable (a None entry in
# sys.modules makes `import x` raise ImportError), as in a core-only install.
_WITHOUT_EXTRAS = """
import importlib, json, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None
import awmp
failed = {{}}
for info in pkgutil.walk_packages(awmp.__path__, "awmp."):
    try:
        importlib.import_module(info.name)
    except Exception as e:
        failed[info.name] = repr(e)
messages = {{}}
from awmp import evaluate, track
from awmp.sweep import ray as ray_backend
for extra, fn in (("track", lambda: track.require("wandb")),
                  ("cluster", ray_backend._import_ray),
                  ("video", evaluate._video_writer)):
    try:
        fn()
        messages[extra] = None
    except Exception as e:
        messages[extra] = [type(e).__name__, str(e)]
loaded = sorted(n for n in {blocked!r} if sys.modules.get(n) is not None)
print(json.dumps({{"failed": failed, "messages": messages, "loaded": loaded}}))
"""


def test_every_module_imports_without_the_extras_and_each_names_its_extra():
    code = _WITHOUT_EXTRAS.format(blocked=sorted(OPTIONAL))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["failed"] == {}, out["failed"]
    assert out["loaded"] == []
    for extra, message in out["messages"].items():
        assert message is not None, f"{extra}: no error although its package is missing"
        kind, text = message
        assert kind.endswith("Error") and "\n" not in text, message
        assert f"pip install 'awmp[{extra}]'" in text, message
