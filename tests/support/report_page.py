"""Reading a `gankit report` page in tests: its tags, attributes and text, and the files it references."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote


class PageCollector(HTMLParser):
    """Tags with their attributes, section ids, and all text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def attrs(self, tag: str, attr: str) -> list[str]:
        return [str(a[attr]) for t, a in self.tags if t == tag and a.get(attr)]


def parse(index: Path) -> PageCollector:
    collector = PageCollector()
    collector.feed(index.read_text(encoding="utf-8"))
    return collector


def assert_references_resolve(index: Path, page: PageCollector) -> list[str]:
    """Every src and href on the page but in-page anchors: relative, inside the page's folder (so the folder stands
    alone) and an existing file. Returns the references checked."""
    folder = index.parent.resolve()
    refs = [str(a[key]) for _, a in page.tags for key in ("src", "href") if a.get(key)]
    refs = [ref for ref in refs if not ref.startswith("#")]
    for ref in refs:
        target = (folder / unquote(ref)).resolve()
        assert target.is_relative_to(folder), f"{ref} points outside {folder}"
        assert target.is_file(), f"{ref} is referenced by {index} but {target} is not a file"
    return refs
