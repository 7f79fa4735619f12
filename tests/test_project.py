"""House rules that keep the project honest, checked on the source itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "blackbox_rp").rglob("*.py")) + sorted((ROOT / "oracles").rglob("*.py"))
# command-line front ends may print; the library may not
FRONT_ENDS = {ROOT / "blackbox_rp" / "cli.py", ROOT / "oracles" / "models" / "small_cnn.py",
              ROOT / "oracles" / "models" / "backdoor_cnn.py"}
FRONT_END_DIRS = {ROOT / "blackbox_rp" / "commands"}


def _readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"{heading}.*?```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert m, f"README has no code block after {heading!r}"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command():
    test_cmd = [ln for ln in _readme_block("## Set-up").splitlines() if "pytest" in ln]
    assert len(test_cmd) == 1, "README's set-up has exactly one test command"
    assert test_cmd[0].strip() in (ROOT / ".ci" / "run").read_text()


def _is_front_end(path: Path) -> bool:
    return path in FRONT_ENDS or any(d in path.parents for d in FRONT_END_DIRS)


def test_no_print_in_library_code():
    offenders = []
    for path in LIBRARY:
        if _is_front_end(path):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"use logging, not print: {offenders}"


GLOBAL_RNG = re.compile(r"\bnp\.random\.(?!default_rng\b|Generator\b|SeedSequence\b|PCG64\b|BitGenerator\b)\w+\s*\("
                        r"|\brandom\.(seed|random|randint|choice|shuffle|gauss|uniform)\s*\(")
TORCH_SEED = re.compile(r"\btorch\.manual_seed\s*\(")


def test_no_global_random_state():
    offenders = []
    for path in LIBRARY:
        text = path.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            # torch.manual_seed is allowed only where torch.random.fork_rng scopes it
            if GLOBAL_RNG.search(code) or (TORCH_SEED.search(code) and "fork_rng" not in text):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, f"take a seed or a numpy Generator instead: {offenders}"


def test_core_never_imports_oracles_at_module_level():
    offenders = []
    for path in sorted((ROOT / "blackbox_rp").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: commands may import oracles inside run()
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "oracles" or n.startswith("oracles.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"blackbox_rp must not import oracles at module level: {offenders}"
