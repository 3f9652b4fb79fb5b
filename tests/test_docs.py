"""The front page and the documentation site stay what issue 26 made them.

README.md is the front page: at most 200 lines, with the install and test commands that .ci/run runs exactly,
and links that resolve. Every command has a docs page whose option tables come from its --help. Every
"`scripts/reproduce_results.sh` step N" a page names is a step the script has. (The strict MkDocs build in
.ci/run checks the links between pages.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SCRIPT = ROOT / "scripts" / "reproduce_results.sh"
INSTALL = 'pip install -e ".[test]" "torch==2.13.0"'
TESTS = "python -m pytest -q"


def _commands():
    from selfbake.cli import COMMANDS

    return list(COMMANDS)


def test_readme_is_a_front_page_of_at_most_200_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_opens_with_the_three_commands_that_ci_runs():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("  #")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands[0] == INSTALL and commands[-1] == TESTS
    assert commands[1].startswith("selfbake bake --model bundled")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert INSTALL in ci and TESTS in ci  # exactly as the README says, each a line of its own
    assert ci.index(INSTALL) < ci.index(TESTS)


def test_readme_has_a_section_and_a_docs_page_per_command():
    text = README.read_text()
    for name in _commands():
        assert f"### `{name}`" in text, f"README.md has no section for `selfbake {name}`"
        page = DOCS / "commands" / f"{name}.md"
        assert page.exists(), f"no docs page {page.relative_to(ROOT)} for `selfbake {name}`"
        assert f"(docs/commands/{name}.md)" in text
        assert f"<!-- cli-options: {name} -->" in page.read_text(), f"{page.name}: options not from --help"


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "no links found"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_every_reproduce_step_named_in_the_docs_exists():
    listed = subprocess.run(
        ["bash", str(SCRIPT), "--list"], capture_output=True, text=True, check=True
    ).stdout
    steps = {int(line.split()[0]) for line in listed.splitlines() if line.strip()}
    assert steps == set(range(1, max(steps) + 1))
    script = SCRIPT.read_text()
    assert all(f"step{n}() {{" in script for n in steps), "a listed step has no function"
    named = []
    for page in [README, *DOCS.rglob("*.md")]:
        text = page.read_text()
        named += [(page.name, int(n)) for n in re.findall(r"reproduce_results\.sh` step (\d+)", text)]
        if page.name == "README.md":
            named += [(page.name, int(n)) for n in re.findall(r"\[(\d+)\] \|", text)]
    assert len(named) >= 10
    unknown = [(page, n) for page, n in named if n not in steps]
    assert not unknown, f"pages name steps the script lacks: {unknown}"


def test_reproduce_script_rejects_an_unknown_step():
    result = subprocess.run(["bash", str(SCRIPT), "99"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "no step 99" in result.stderr


def test_option_tables_come_from_the_parser():
    pytest.importorskip("mkdocs")
    import sys

    sys.path.insert(0, str(DOCS / "_hooks"))
    try:
        import cli_options
    finally:
        sys.path.pop(0)
    table = cli_options.options_markdown("bake")
    assert "| `--prompt-file PROMPT_FILE` |" in table and "(default: 6)" in table  # --patience's default
    assert "| `--merge`, `--no-merge` |" in table and "| `--kl {full,topk}` |" in table
    page = cli_options.on_page_markdown("x\n<!-- cli-options: eval -->\ny", None, None, None)
    assert "`--compare RUN_A RUN_B`" in page and page.startswith("x\n") and page.endswith("\ny")
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError, match="no command 'nosuch'"):
        cli_options.on_page_markdown("<!-- cli-options: nosuch -->", None, None, None)
