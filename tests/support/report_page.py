"""Reading a `gankit report` page in tests: its tags, attributes and text, the files it references, and how it
loads in a real browser."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
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


@dataclass
class BrowserPage:
    images: list[list[Any]]  # [src, complete, naturalWidth]
    players: list[list[Any]]  # [src, readyState, error code, duration]
    errors: list[dict[str, Any]]  # console entries of level SEVERE or WARNING


def open_in_chromium(index: Path, screenshot: Path) -> BrowserPage:
    """Open a report page in Debian's headless Chromium (skips the test when it is not installed), wait until every
    image and audio element has loaded or failed, save a whole-page screenshot, and say what it found."""
    import pytest

    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    missing = [str(p) for p in (chromium, driver_path) if not p.exists()]
    if missing:
        pytest.skip(f"browser test needs Debian chromium and chromium-driver; missing: {', '.join(missing)}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    profile = tempfile.mkdtemp(prefix="gankit-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        driver.get(index.resolve().as_uri())
        # Lazy images load when scrolled to; make them eager so every one is checked.
        driver.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });")
        driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const images = [...document.images].map(i => i.complete ? null : new Promise(r => {
                i.addEventListener('load', r); i.addEventListener('error', r); }));
            const audio = [...document.querySelectorAll('audio')].map(a => new Promise(r => {
                if (a.readyState >= 1 || a.error) return r();
                a.addEventListener('loadedmetadata', r); a.addEventListener('error', r); a.load(); }));
            Promise.all([...images, ...audio].filter(Boolean)).then(() => done());
        """)
        images = driver.execute_script(
            "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
        players = driver.execute_script(
            "return [...document.querySelectorAll('audio')].map(a => "
            "[a.getAttribute('src'), a.readyState, a.error ? a.error.code : null, a.duration]);")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1400, 1000)
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1400, min(int(height) + 100, 12000))  # the whole page in one picture
        assert driver.save_screenshot(str(screenshot))
        return BrowserPage(images, players, errors)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
