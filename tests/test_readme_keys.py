"""The README holds to the code: its list of pipeline keys is the parser's (a key added to one and
not the other fails here), and its code blocks are well formed."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from models.tasks import TASKS
from runtime.pipeline_config import SCHEMA

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_key_block() -> str:
    text = README.read_text()
    match = re.search(r"```\n(\[pipeline\].*?)```", text, re.S)
    assert match, "README: the pipeline key block is missing"
    return match.group(1)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z][a-z0-9_]*", re.sub(r"\(.*?\)", "", text)))


def test_readme_lists_every_table_and_key_the_parser_accepts() -> None:
    block = _readme_key_block()
    tables = dict(re.findall(r"^\[(\w+)\]\s+(.*?)(?=^\[|\Z)", block, re.S | re.M))
    task_text = tables.pop("task")
    assert set(tables) == set(SCHEMA), "README tables differ from runtime.pipeline_config.SCHEMA"
    for table, keys in SCHEMA.items():
        assert _words(tables[table]) == set(keys), f"README [{table}] keys differ from the parser's"
    listed: dict[str, set[str]] = {}
    name = ""
    for line in task_text.splitlines()[1:]:  # "  navigation  seq_len, ..." then continuation lines
        first, _, rest = line.strip().partition(" ")
        if first in TASKS:
            name, line = first, rest
        listed.setdefault(name, set()).update(_words(line))
    assert set(listed) == set(TASKS), "README [task] lists other tasks than models.tasks.TASKS"
    for name, params in listed.items():
        assert params == {f.name for f in dataclasses.fields(TASKS[name].Params)}, f"README [task] {name}"


def test_readme_code_fences_pair_up() -> None:
    # A closing fence followed by text does not close the block (CommonMark): the rest of the
    # README would render as code.
    fences = [(i, line.rstrip()) for i, line in enumerate(README.read_text().splitlines(), 1) if line.startswith("```")]
    for k, (i, line) in enumerate(fences):
        if k % 2:
            assert line == "```", f"README line {i}: a closing fence must stand alone, got {line!r}"
        else:
            assert re.fullmatch(r"```[\w+-]*", line), f"README line {i}: an opening fence, got {line!r}"
    assert len(fences) % 2 == 0, f"README: unclosed code fence at line {fences[-1][0]}"
