"""Every code block a reader may paste from README.md and docs/ parses: ``bash`` blocks through ``bash -n`` and a
check that each command starts with a program a reader has (a comment that lost its ``#`` runs its first word as a
command: ``one``, ``4``, ``later``), ``python`` blocks through Python's parser."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)

# The programs the docs' commands start with (a new one is added here deliberately, with the page that needs it).
PROGRAMS = {
    "python", "python3", "pip", "segzoo", "torchrun", "cd", "git", "export", "ls", "cat", "mkdir", "cp", "mv", "rm",
    "echo", "for", "do", "done", "if", "then", "fi", "ruff", "mkdocs", "coverage", "huggingface-cli", "hf", "curl",
    "wget", "tar", "unzip", "bash", ".", "source", "sudo", "apt-get", "gdown", "du", "head", "tail", "time", "env",
    "nvidia-smi", "uv", "conda", "while", "sleep", "kill", "wait", "test", "[", "exit", "set", "trap", "mmseg-venv",
    "tensorboard", "diff", "sha256sum", "find", "grep", "sed", "printf", "xargs", "ln", "touch", "chmod",
}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text[:match.start()].count("\n") + 1
                found.append((f"{page.relative_to(REPO)}:{line}", match.group(2)))
    return found


def _commands(block: str) -> list[str]:
    """Each command's first line (continuations joined away), comments and blank lines left out."""
    commands, continued = [], False
    for line in block.splitlines():
        stripped = line.strip()
        if not continued and stripped and not stripped.startswith("#"):
            commands.append(stripped)
        continued = stripped.endswith("\\")
    return commands


def _first_word(command: str) -> str:
    words = command.replace("(", " ").split()
    while words and ASSIGNMENT.match(words[0]):  # VAR=value python ...
        words.pop(0)
    return words[0] if words else ""


BASH = _blocks("bash")
PYTHON = _blocks("python")


def test_the_pages_have_code_blocks():
    assert len(BASH) > 20 and len(PYTHON) > 15  # the fence pattern finds them: this test reads what it should


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("where, block", BASH, ids=[where for where, _ in BASH])
def test_bash_blocks_parse_and_run_real_programs(where, block):
    result = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
    assert result.returncode == 0, f"{where}: bash -n: {result.stderr.strip()}"
    unknown = [command for command in _commands(block) if _first_word(command) not in PROGRAMS]
    assert not unknown, f"{where}: lines that do not start with a program (a comment without '#'?): {unknown}"


@pytest.mark.parametrize("where, block", PYTHON, ids=[where for where, _ in PYTHON])
def test_python_blocks_parse(where, block):
    try:
        ast.parse(block)
    except SyntaxError as err:
        pytest.fail(f"{where}: line {err.lineno}: {err.msg}")


def test_the_checks_catch_what_they_are_for():
    assert _first_word("one process (GPU if there is one, else CPU)") == "one"
    assert _first_word("HF_HUB_OFFLINE=1 python -c 'x'") == "python"
    assert _commands("python a.py \\\n    --flag\n# a comment\n\nsegzoo list") == ["python a.py \\", "segzoo list"]
    assert subprocess.run(["bash", "-n"], input="one process (GPU if there is one)", capture_output=True,
                          text=True).returncode
