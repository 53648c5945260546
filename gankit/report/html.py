"""HTML for the report page: everything not wrapped in `Markup` is escaped, so run names, config text and
health messages cannot break (or script) the page. No external resources: the page works offline."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote


class Markup(str):
    """A string that is already HTML; `esc` passes it through unchanged."""

    __slots__ = ()


def esc(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[object]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


def element(tag: str, /, *children: object, **attrs: object) -> Markup:
    """`<tag attrs>children</tag>`; attribute `class_` becomes `class`, `True` a bare attribute, and
    `None`/`False` leaves the attribute out. Void elements (img, br, meta) take no children."""
    rendered = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        rendered.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    opening = f"<{tag}{''.join(rendered)}>"
    if tag in {"img", "br", "meta", "hr", "source"}:
        return Markup(opening)
    return Markup(f"{opening}{join(children)}</{tag}>")


def url(relative_path: str) -> str:
    """A relative file path as a URL path (sample ids may hold spaces, '#' or '?')."""
    return quote(relative_path, safe="/")


def table(headers: Sequence[object], rows: Sequence[Sequence[object]], class_: str | None = None,
          row_classes: Sequence[str | None] | None = None) -> Markup:
    classes = row_classes if row_classes is not None else [None] * len(rows)
    head = element("thead", element("tr", *(element("th", h) for h in headers)))
    body = element("tbody", *(element("tr", *(element("td", cell) for cell in row), class_=row_class)
                              for row, row_class in zip(rows, classes, strict=True)))
    return element("table", head, body, class_=class_)


def key_values(pairs: Iterable[tuple[object, object]]) -> Markup:
    return element("table", element("tbody", *(element("tr", element("th", k), element("td", v)) for k, v in pairs)),
                   class_="kv")


def note(text: object, kind: str = "empty") -> Markup:
    """A sentence in place of something the run has not produced (yet), or a problem."""
    return element("p", text, class_=f"note {kind}")


def figure(image: str, alt: str, caption: object = None) -> Markup:
    """An image linked to itself (click for full size) with an optional caption."""
    img = element("img", src=url(image), alt=alt, loading="lazy")
    return element("figure", element("a", img, href=url(image)), element("figcaption", caption) if caption else None)


def audio(path: str) -> Markup:
    # preload="metadata": the browser reads the header (duration) only; hundreds of players stay cheap.
    fallback = element("a", "download", href=url(path))
    return element("audio", fallback, controls=True, preload="metadata", src=url(path))


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: Markup


_CSS = """
:root { --fg:#1d1d1f; --muted:#6e6e73; --line:#e3e3e8; --bg:#fafafa; --accent:#1f4e79; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
header { padding:18px 28px 10px; background:#fff; border-bottom:1px solid var(--line); }
header h1 { margin:0 0 4px; font-size:22px; }
header .sub { color:var(--muted); }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
      padding:6px 28px; display:flex; flex-wrap:wrap; gap:4px 16px; }
nav a { color:var(--accent); text-decoration:none; font-weight:500; }
main { padding:8px 28px 40px; max-width:1500px; }
section { margin-top:22px; }
h2 { font-size:18px; border-bottom:2px solid var(--accent); padding-bottom:3px; }
h3 { font-size:15px; margin:18px 0 6px; }
figure { margin:8px 0 14px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); background:#fff; }
figcaption { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; background:#fff; margin:6px 0 12px; }
th, td { border:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
thead th { background:#f0f2f5; position:sticky; top:34px; }
table.kv th { background:#f6f7f9; font-weight:500; white-space:nowrap; }
td.num, .num { font-variant-numeric: tabular-nums; }
.cols { display:flex; flex-wrap:wrap; gap:24px; align-items:flex-start; }
.cols > div { min-width:320px; }
pre.config { background:#fff; border:1px solid var(--line); padding:10px; max-height:520px; overflow:auto;
             font-size:12px; }
.note { padding:8px 12px; border-radius:4px; }
.note.empty { background:#f0f2f5; color:#3a3a3c; }
.note.problem { background:#fdecea; color:#8a1c14; }
.note.hint { background:#eef5fb; color:#1f4e79; }
.sev { display:inline-block; padding:0 6px; border-radius:3px; color:#fff; font-size:12px; }
.sev.info { background:#4e79a7; } .sev.warning { background:#f28e2b; } .sev.error { background:#e15759; }
.sev.other { background:#9c755f; }
tr.best td { background:#eaf6ea; }
table.samples td { min-width:250px; }
table.samples td:first-child { min-width:0; white-space:nowrap; }
/* Stretched to one size: every column is one utterance, so rows stay aligned and comparable. */
table.samples img { width:300px; height:130px; image-rendering:pixelated; display:block; margin-top:4px;
                    border:1px solid var(--line); }
table.samples audio { width:300px; max-width:100%; }
.level { color:var(--muted); font-size:12px; }
.label { font-size:12px; font-weight:600; margin-top:6px; }
.level.bad { color:#c0392b; font-weight:600; }
.values { color:var(--muted); font-size:12px; font-family:ui-monospace,monospace; }
"""


def render_page(title: str, subtitle: Markup | str, sections: Sequence[Section]) -> str:
    nav = element("nav", *(element("a", s.title, href=f"#{s.anchor}") for s in sections))
    body = element(
        "body",
        element("header", element("h1", title), element("div", subtitle, class_="sub")),
        nav,
        element("main", *(element("section", element("h2", s.title), s.body, id=s.anchor) for s in sections)),
    )
    head = element(
        "head",
        element("meta", charset="utf-8"),
        element("meta", name="viewport", content="width=device-width, initial-scale=1"),
        element("title", title),
        element("style", Markup(_CSS)),
    )
    return f"<!DOCTYPE html>\n<html lang=\"en\">{head}{body}</html>\n"
