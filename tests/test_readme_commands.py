"""The README's two commands are the newcomer's whole path: CI must run the test command as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_commands_one_trains_one_tests():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    train, test = commands
    assert train.startswith("python3 -m venv .venv") and train.endswith("miniclip train")
    assert test.startswith("python3 -m venv .venv") and test.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim_before_installing_torch():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = _readme_commands()[1]
    lines = ci.splitlines()
    assert test_command in lines, "CI must run the README's test command exactly as written"
    first_run = lines.index(test_command)
    torch_install = next(i for i, line in enumerate(lines) if "pip install" in line and "torch" in line)
    assert first_run < torch_install, "the bare run must come before torch and the extras are installed"
