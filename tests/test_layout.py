"""The package's modules import each other in one direction: along the data flow, never back up it."""

import ast
from pathlib import Path

import sb3_il

#: Hub -> expert -> demos -> buffer -> fit -> loop -> run folder -> fine-tuning / Hub; a module may import only
#: modules listed before it.
FLOW = [
    "errors", "inputs", "files", "config", "trust", "plots", "envs", "policy", "experts", "evaluation", "demos",
    "buffer", "bc", "selection", "recipe", "dagger", "runs", "anchored_ppo", "finetune", "model_card", "hub",
    "data_hub", "api", "peer", "scale", "benchmark", "finetune_benchmark", "tune", "cli", "__main__", "__init__",
]  # fmt: skip


def imports(path: Path) -> set[str]:
    """The sb3_il modules ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sb3_il"):
            found.add(node.module.removeprefix("sb3_il").lstrip(".") or node.names[0].name)
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sb3_il.")}
    return found


def test_every_module_imports_only_modules_before_it_in_the_flow():
    modules = {p.stem: p for p in Path(sb3_il.__file__).parent.glob("*.py")}
    assert set(modules) == set(FLOW), "add new modules to FLOW where they sit in the data flow"
    for name, path in modules.items():
        later = {other for other in imports(path) if FLOW.index(other) >= FLOW.index(name)}
        assert not later, f"{name} imports {sorted(later)}, which sit after it in the flow (or are itself)"
