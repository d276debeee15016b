"""A context has the modules it needs: none that is only a docstring."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = ("orders", "payments", "inventory", "shipping", "notifications", "customers")


def _only_a_docstring(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return bool(body) and all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


@pytest.mark.parametrize("context", CONTEXTS)
def test_no_module_of_the_context_is_a_placeholder(context):
    modules = [p for p in (ROOT / context).rglob("*.py") if p.name != "__init__.py"]
    assert modules, f"{context} has no modules"
    assert [str(p.relative_to(ROOT)) for p in modules if _only_a_docstring(p)] == []
