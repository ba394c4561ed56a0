"""The README's map of the tree ("How it fits together") names every product module, so
a newcomer can find each one and the map cannot fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("traceforge_protocol", "traceforge_client", "traceforge_daemon")


def readme_map() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## How it fits together")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_the_readme_map_names_every_product_module():
    section = readme_map()
    named = set(re.findall(r"`([\w/]+\.py)`", section))
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            relative = path.relative_to(ROOT / package).as_posix()
            # modules are named by file name, or by folder/file where a name repeats
            if relative not in named and path.name not in named:
                missing.append(f"{package}/{relative}")
    assert not missing, f"README 'How it fits together' does not name: {missing}"


def test_the_readme_map_names_no_module_that_is_gone():
    section = readme_map()
    files = {path.name for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    files |= {path.relative_to(ROOT / package).as_posix()
              for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    named = {name for name in re.findall(r"`([\w/]+\.py)`", section)
             if not name.startswith("tests/")} - {"demo.py"}
    assert named <= files, f"named but not in the tree: {sorted(named - files)}"
