"""The README does not rot: every test it cites exists, every file it links exists."""

import re

from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def cited_tests():
    """``(path, name)`` for every ``tests/x.py::name`` and following ``::name`` in a table cell."""
    for cell in README.split("|"):
        path = None
        for match in re.finditer(r"`(tests/[\w/]+\.py)?::(\w+)`", cell):
            path = match.group(1) or path
            yield path, match.group(2)


def test_every_cited_test_exists():
    cited = list(cited_tests())
    assert len(cited) > 20
    for path, name in cited:
        assert path is not None, f"::{name} cited without a file"
        source = (ROOT / path).read_text()
        assert re.search(rf"^\s*def {name}\(", source, re.M), (
            f"{path}::{name} is cited in README.md but does not exist"
        )


def test_every_cited_test_file_exists():
    for path in set(re.findall(r"`(tests/[\w/]+\.py)`", README)) | {p for p, _ in cited_tests() if p}:
        assert (ROOT / path).is_file(), path


def test_every_relative_link_and_picture_exists():
    links = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README)
    assert any(link.startswith("docs/screenshots/") for link in links)
    for link in links:
        assert (ROOT / link.split("#")[0]).exists(), link
