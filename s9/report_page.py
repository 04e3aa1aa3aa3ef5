"""The review page's HTML: one small template, every value escaped, every link relative to the page.

No script, no font or style sheet from anywhere else: the page is one file that opens from disk in any
browser; the clips, frames and the contact sheet are linked beside it.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import quote

from .atomic import write_text_atomic
from .report import FAILED, FRESH, REPORT_DIR, ConceptReport, SceneReport, collect, contact_sheet

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>s9 review: $title</title>
<link rel="icon" href="data:,">
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px 24px;
       background: #16171b; color: #e6e6e6; }
a { color: #8fb8ff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
table.sum { border-collapse: collapse; margin: 8px 0 16px; }
table.sum td, table.sum th { border: 1px solid #3a3b42; padding: 4px 10px; text-align: left; }
.scene { border: 1px solid #34353c; border-radius: 8px; margin: 16px 0; padding: 12px 16px; background: #1d1e23; }
.scene h3 { margin: 0 0 8px; font-size: 16px; }
.media { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
.media img, .media video { max-width: 420px; max-height: 300px; background: #000; border-radius: 4px; }
.noclip { width: 420px; height: 236px; display: flex; align-items: center; justify-content: center;
          background: #26272d; color: #9a9aa2; border-radius: 4px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 10px 0; }
dt { color: #9a9aa2; } dd { margin: 0; }
pre { white-space: pre-wrap; background: #121317; padding: 8px 10px; border-radius: 4px; }
.badge { padding: 1px 8px; border-radius: 10px; font-size: 12px; margin-left: 8px; }
.fresh { background: #1f5130; } .stale { background: #5c4a12; } .failed { background: #6b1f24; }
.sheet { max-width: 100%; border: 1px solid #34353c; }
</style>
</head>
<body>
<h1>s9 review: $title</h1>
<p>$nav</p>
<table class="sum">
<tr><th>scenes</th><th>fresh</th><th>stale</th><th>failed</th><th>estimated</th><th>paid</th></tr>
<tr><td>$n</td><td>$fresh</td><td>$stale</td><td>$failed</td><td>$$$estimated</td><td>$$$paid</td></tr>
</table>
<p>Contact sheet (first and last frame of every scene): <a href="$sheet">$sheet_name</a></p>
<p><img class="sheet" src="$sheet" alt="contact sheet: first and last frames of every scene"></p>
$concepts
</body>
</html>
""")

_SCENE = Template("""<section class="scene" id="$anchor">
<h3>$concept · scene $number<span class="badge $status">$status</span></h3>
<div class="media">
<a href="$frame"><img src="$frame" alt="first frame of $concept scene $number"></a>
$clip
</div>
<dl>
<dt>model</dt><dd>$model_label ($model)</dd>
<dt>duration</dt><dd>$duration s</dd>
<dt>aspect</dt><dd>$aspect$aspect_sent</dd>
<dt>resolution</dt><dd>$resolution</dd>
<dt>cost</dt><dd>estimated $$$estimated · paid $$$paid</dd>
<dt>status</dt><dd>$status_text</dd>$take
<dt>files</dt><dd>$files</dd>
</dl>
<pre>$prompt</pre>
</section>
""")


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _href(target: Path, page: Path) -> str:
    """`target` as a link from `page`: relative (so the page works from any checkout), each part %-quoted."""
    rel = Path(os.path.relpath(target, page.parent)).as_posix()
    return _esc(quote(rel, safe="/"))


def _scene(row: SceneReport, page: Path) -> str:
    frame = _href(row.first_frame, page)
    if row.has_clip:
        clip = (f'<video controls preload="metadata" poster="{frame}" width="420">'
                f'<source src="{_href(row.clip, page)}" type="video/mp4">'
                f"your browser cannot play this MP4</video>")
    else:
        clip = '<div class="noclip">no clip yet</div>'
    files = [f'<a href="{_href(row.clip, page)}">{_esc(row.clip.name)}</a>'] if row.has_clip else []
    if row.debug_file is not None and row.debug_file.is_file():
        files.append(f'<a href="{_href(row.debug_file, page)}">debug file</a>')
    status_text = {FRESH: "fresh: the clip matches its inputs", FAILED: f"failed: {row.detail}"}.get(
        row.status, f"stale: {row.detail}")
    return _SCENE.substitute(
        anchor=_esc(row.key), concept=_esc(row.concept), number=row.number, status=_esc(row.status),
        frame=frame, clip=clip, model_label=_esc(row.model_label), model=_esc(row.model), duration=row.duration,
        aspect=_esc(row.aspect),
        aspect_sent=_esc(f" (sent as {row.aspect_sent})" if row.aspect_sent and row.aspect_sent != row.aspect
                         else ""),
        resolution=_esc(row.resolution), estimated=f"{row.estimated_usd:.2f}", paid=f"{row.actual_usd:.2f}",
        status_text=_esc(status_text),
        take=f"\n<dt>take</dt><dd>{row.take} (a fresh take of unchanged inputs)</dd>" if row.take else "",
        files=" · ".join(files) or "—", prompt=_esc(row.prompt))


def render_page(title: str, concepts: list[ConceptReport], page: Path, sheet: Path, links: dict[str, str]) -> str:
    """The HTML of one page (`page` is where it will be written: links are relative to it)."""
    rows = [row for c in concepts for row in c.scenes]
    nav = " · ".join(f'<a href="{_esc(quote(href))}">{_esc(name)}</a>' for name, href in links.items())
    sections = []
    for concept in concepts:
        sections.append(f"<h2>{_esc(concept.name)} <small>(batch {_esc(concept.batch)})</small></h2>")
        sections += [_scene(row, page) for row in concept.scenes]
    return _PAGE.substitute(
        title=_esc(title), nav=nav, n=len(rows), fresh=sum(r.status == FRESH for r in rows),
        stale=sum(r.status not in (FRESH, FAILED) for r in rows), failed=sum(r.status == FAILED for r in rows),
        estimated=f"{sum(r.estimated_usd for r in rows):.2f}", paid=f"{sum(r.actual_usd for r in rows):.2f}",
        sheet=_href(sheet, page), sheet_name=_esc(sheet.name), concepts="\n".join(sections))


@dataclass
class ReportResult:
    pages: list[Path]  # the batch pages first, then the concept pages
    sheets: list[Path]
    scenes: int


def write_report(root: Path, targets: list[str] | None = None) -> ReportResult:
    """Write each batch's page and each concept's page, with their contact sheets; return what was written."""
    from .pipeline.declare import outputs_dir, project_settings

    root = Path(root).resolve()
    concepts = collect(root, targets)
    outputs = root / outputs_dir(project_settings(root), root)
    pages: list[Path] = []
    sheets: list[Path] = []
    batches: dict[str, list[ConceptReport]] = {}
    for concept in concepts:
        batches.setdefault(concept.batch, []).append(concept)
    concept_pages: list[Path] = []
    for batch, members in sorted(batches.items()):
        folder = outputs / batch / REPORT_DIR
        rows = [row for c in members for row in c.scenes]
        sheet = contact_sheet(rows, folder / "contact_sheet.png")
        sheets.append(sheet)
        index = folder / "index.html"
        links = {c.name: f"{c.name}.html" for c in members}
        write_text_atomic(index, render_page(f"batch {batch}", members, index, sheet, links))
        pages.append(index)
        for concept in members:
            own_sheet = contact_sheet(concept.scenes, folder / f"{concept.name}_contact_sheet.png")
            sheets.append(own_sheet)
            page = folder / f"{concept.name}.html"
            write_text_atomic(page, render_page(f"{concept.name} (batch {batch})", [concept], page, own_sheet,
                                                {"index": "index.html"}))
            concept_pages.append(page)
    return ReportResult(pages + concept_pages, sheets, sum(len(c.scenes) for c in concepts))
