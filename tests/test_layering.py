"""The house rules that keep segzoo readable: every module imports only its own layer or the layers below it, a
model name's walk through create_model never climbs back up, and `import segzoo` stays cheap and portable."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

import segzoo

PACKAGE = Path(segzoo.__file__).resolve().parent

# Layers from the bottom up (docs/architecture.md). A module may import modules of its own layer or of lower ones.
LAYERS = [
    ("segzoo.errors", "segzoo.version", "segzoo.lazy", "segzoo.upstream", "segzoo.network"),
    ("segzoo.distributed", "segzoo.files"),  # both raise segzoo.errors' exceptions
    ("segzoo.registry",),
    ("segzoo.config",),
    ("segzoo.layers",),
    ("segzoo.backbones",),
    ("segzoo.necks",),
    ("segzoo.heads",),
    ("segzoo.model",),
    ("segzoo.upstreams",),
    ("segzoo.zoo",),
    ("segzoo.weights",),
    ("segzoo.factory",),
    ("segzoo.inference",),
    ("segzoo.data",),
    ("segzoo.evaluation", "segzoo.train"),
    ("segzoo.tools",),
    ("segzoo.testing",),
    ("segzoo", "segzoo.__main__"),  # the package root re-exports the API
]


def layer_of(module: str) -> tuple[int, str]:
    """(rank, the layer's own name) of a segzoo module: the longest listed prefix wins."""
    best = None
    for rank, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (rank, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """Every segzoo module ``path`` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "segzoo"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "segzoo":
                continue
            # "from . import reference" imports a module; "from .config import ModelConfig" a name of one
            found |= {f"{target}.{alias.name}" if is_module(f"{target}.{alias.name}") else target
                      for alias in node.names}
    return found


def test_every_module_imports_only_downwards():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        rank, layer = layer_of(source)
        for target in sorted(imported_modules(path)):
            target_rank, target_layer = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_layer != layer):
                upward.append(f"{source} ({layer}) imports {target} ({target_layer})")
    assert not upward, "imports that go up or sideways:\n" + "\n".join(upward)


def _calls_between_layers(run) -> list[tuple[str, str]]:
    """(caller module, callee module) of every call from one segzoo module into another while ``run()`` runs."""
    edges = []

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if callee.startswith("segzoo") and caller.startswith("segzoo") and caller != callee:
            edges.append((caller, callee))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return edges


def test_a_model_name_walks_down_the_layers(tmp_path):
    """create_model of a saved model, of a zoo name and of a generic name: no call from a lower layer into a
    higher one (the walk that once entered checkpoint.py four times and climbed back up six)."""
    segzoo.save_pretrained(segzoo.create_model("fcn_resnet18", num_classes=3), tmp_path / "saved")

    def run():
        segzoo.create_model(f"local-dir:{tmp_path / 'saved'}")
        with torch.device("meta"):
            segzoo.create_model("psp_resnet101_voc")
        segzoo.create_model("pspnet_resnet18", neck="jpu")

    edges = _calls_between_layers(run)
    assert ("segzoo.factory", "segzoo.weights.resolver") in edges and ("segzoo.factory", "segzoo.model") in edges
    upward = sorted({f"{a} -> {b}" for a, b in edges if layer_of(b)[0] > layer_of(a)[0]})
    assert not upward, "calls that climb up the layers:\n" + "\n".join(upward)


def test_import_segzoo_is_core_only_and_works_without_resource():
    """`resource` is POSIX only: with it unimportable (as on Windows) `import segzoo` still works, and it imports
    neither the tools, the optimizer (torch._dynamo), timm nor huggingface_hub until they are used."""
    script = textwrap.dedent("""
        import sys
        sys.modules["resource"] = None  # what an unavailable module looks like to the import system
        import segzoo
        heavy = [m for m in ("segzoo.tools.benchmark", "segzoo.inference.export", "segzoo.inference.optimize",
                             "torch._dynamo", "timm", "huggingface_hub") if m in sys.modules]
        print("heavy:", heavy)
        model = segzoo.create_model("fcn_resnet18", num_classes=2)
        print("timm" in sys.modules, callable(segzoo.benchmark), callable(segzoo.predict))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["heavy: []", "True True True"]
