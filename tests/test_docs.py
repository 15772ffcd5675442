"""The README and docs/ hold together: every page is linked from the README, and every relative link (and
its #anchor) leads somewhere."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    heads = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_readme_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    linked = {(ROOT / target.split("#")[0]).resolve() for target in LINK.findall(readme)}
    assert [p.name for p in PAGES if p.resolve() not in linked] == []
    assert len(PAGES) >= 10


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in _anchors(dest), f"{page.name}: {target}"


def test_the_quick_start_commands_stay_verbatim():
    # the two set-up commands from a checkout, and the quick start without one
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./.ci/in-venv autoinit tune configs/quickstart.yaml" in readme
    assert "./.ci/in-venv pytest" in readme
    assert "autoinit tune --example quickstart" in readme
