"""The README's "Overfitting statistics" example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def section_code(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    nxt = re.compile(r"\n##+ ").search(text, start + len(heading) + 2)  # the next heading
    blocks = re.findall(r"```python\n(.*?)```", text[start:nxt.start() if nxt else None],
                        flags=re.S)
    assert blocks, f"no python block under {heading!r}"
    return "\n".join(blocks)


def test_overfitting_statistics_example_runs(capsys):
    code = section_code("### Overfitting statistics")
    exec(compile(code, "README.md: Overfitting statistics", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    psr, dsr = (float(v) for v in re.findall(r"PSR ([\d.]+), DSR ([\d.]+)", out[0])[0])
    assert psr > 0.95 > dsr  # the point of the example
    assert out[1].startswith("PBOResult(probability=") and "combinations=12870" in out[1]
    assert out[2] == "15 (5, 6)"
