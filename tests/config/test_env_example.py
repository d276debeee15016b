"""`.env.example` lists every variable the project reads from the environment, each with a comment.

The reads are found in the code (config/ and outbox/) by their calls:
django-environ's ``env(...)`` and ``env.<cast>(...)``, the URL readers of
config/settings/base.py (``database_url("DATABASE_URL")``...), and
``os.environ`` / ``os.getenv``; and the outbox's knobs, which
``outbox.conf.from_environment`` reads in a loop, one ``OUTBOX_<KEY>`` per key
of its ``DEFAULTS``. A setting added without its line here fails this test.
"""

import ast
import re
from pathlib import Path

from outbox.conf import DEFAULTS, ENVIRONMENT_PREFIX

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("config", "outbox")
URL_READERS = {"database_url", "cache_url", "email_url", "broker_url", "_checked_url"}
# `NAME=value` or `#NAME=value` (commented out: the default stands) at the start of a line.
ENTRY = re.compile(r"^#?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def _name_read(call: ast.Call) -> str | None:
    """The variable a call reads from the environment, when its first argument names it."""
    if not call.args or not isinstance(call.args[0], ast.Constant) or not isinstance(call.args[0].value, str):
        return None
    func = call.func
    if isinstance(func, ast.Name) and func.id in {"env", *URL_READERS}:
        return call.args[0].value
    if isinstance(func, ast.Attribute):
        owner = func.value
        if isinstance(owner, ast.Name) and owner.id == "env" and not func.attr.endswith(("_config", "read_env")):
            return call.args[0].value  # env.int("X"), env.bool("X"), env.list("X")...
        if isinstance(owner, ast.Name) and owner.id == "os" and func.attr == "getenv":
            return call.args[0].value
        if _is_os_environ(owner) and func.attr in {"get", "setdefault"}:
            return call.args[0].value
    return None


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def variables_read() -> dict[str, str]:
    """Every variable read, with where (the first place) it is read."""
    found: dict[str, str] = {}
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                name = None
                if isinstance(node, ast.Call):
                    name = _name_read(node)
                elif (
                    isinstance(node, ast.Subscript)
                    and isinstance(node.ctx, ast.Load)
                    and _is_os_environ(node.value)
                    and isinstance(node.slice, ast.Constant)
                ):
                    name = node.slice.value
                if name:
                    found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    for key in DEFAULTS:  # read by name in from_environment's loop, not by a constant
        found.setdefault(ENVIRONMENT_PREFIX + key, "outbox/conf.py (from_environment)")
    return found


def listed() -> dict[str, str]:
    """The variables of .env.example, each with the comment line above it."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    entries = {}
    for number, line in enumerate(lines):
        match = ENTRY.match(line)
        if match:
            above = lines[number - 1] if number else ""
            entries[match.group(1)] = above if above.startswith("# ") else ""
    return entries


def test_the_reader_finds_the_reads_it_is_meant_to_find():
    # a settings module's ways of reading a variable are each recognised (else the next test proves little)
    tree = ast.parse(
        'env("A"); env.int("B", default=1); database_url("C"); os.environ.get("D"); os.environ["E"]; '
        'os.getenv("F"); env.db_url_config(url); os.environ["G"] = "x"'
    )
    names = {_name_read(n) for n in ast.walk(tree) if isinstance(n, ast.Call)} - {None}
    names |= {
        n.slice.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Load) and _is_os_environ(n.value)
    }
    assert names == {"A", "B", "C", "D", "E", "F"}
    assert {"DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL", "OUTBOX_LEASE_SECONDS"} <= variables_read().keys()


def test_every_variable_the_project_reads_is_in_env_example():
    missing = {name: where for name, where in variables_read().items() if name not in listed()}
    assert not missing, f".env.example lacks (add each with a one-line comment and its default): {missing}"


def test_every_entry_of_env_example_says_what_it_is():
    uncommented = [name for name, comment in listed().items() if not comment]
    assert not uncommented, f"no comment line right above: {uncommented}"
