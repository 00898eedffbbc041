"""The README shows what runs: its test command is what CI runs, and its library example is the
file that tests/test_library_example.py runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readmes_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S).group(1)  # the first block: the two commands
    test_command = commands.strip().splitlines()[-1]
    assert test_command == 'pip install -e ".[test]" && python -m pytest -q'
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == test_command


def test_the_readmes_library_example_is_the_tested_file():
    shown = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert shown.strip() and shown.strip() in (ROOT / "examples" / "library.py").read_text()
