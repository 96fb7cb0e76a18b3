"""Feedback that teaches without giving the hidden tests away.

nbgrader's HTML feedback shows full tracebacks, and a traceback prints the
lines of the test cell that raised. With hidden regions removed from the
test cells (ClearHiddenTestsInTestCells), ``ShortTracebacks`` reduces every
error output to its final line (``CheckFailed: <what to fix>``).

nbgrader's page then lists one identical "Test cell" link per graded cell
and leaves the decisive message somewhere below, on one line that runs off
the page. ``PartSummary`` puts a table at the top instead: each part of the
assignment, its points, and what the grader said about it (the messages of
its graded cells' outputs, failures first, then what passed); the course's
template (``templates/resnet_feedback``) hides nbgrader's list and wraps
outputs. The summary is HTML built here from escaped strings and put on the
page by the template as it is, never through Markdown, so no message (a
blank line, a link, a tag) can end it or add to it; a student cannot mark a
cell of their own as the summary (the mark is removed from every other cell).

Everything else a student wrote is inert wherever it is rendered:
nbgrader_config.py replaces the HTML exporter's ``markdown2html`` and
``clean_html`` filters by :func:`markdown2html` and :func:`clean_html`
below, for the feedback pages and for any page nbgrader renders with this
course's configuration. They keep text, headings, lists, tables, code,
links (http, https, mailto, in-page) and embedded ``data:`` images, and
escape the rest: no script, event handler, style, iframe, form, remote
image or ``javascript:`` link.
"""
import functools
import html
import re
from pathlib import Path

import bleach
import nbformat
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import InvalidNotebook, IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests


class ClearHiddenTestsInTestCells(ClearHiddenTests):
    """nbgrader's ClearHiddenTests, applied to the instructor's test cells only.

    nbgrader looks for its markers in every cell, and a student whose own code
    holds ``BEGIN HIDDEN TESTS`` without its end (in a comment or a string)
    stops the whole feedback page. Hidden tests only live in test cells
    (graded, locked, not answers), whose source nbgrader's autograde restores
    from the gradebook; the students' cells are shown as they wrote them.
    """

    def preprocess_cell(self, cell, resources, index):
        if utils.is_grade(cell) and utils.is_locked(cell) and not utils.is_solution(cell):
            return super().preprocess_cell(cell, resources, index)
        return cell, resources


TEMPLATES = Path(__file__).resolve().parent / "templates"
SUMMARY_MARK = "resnet_part_summary"   # cell metadata of the summary cell, set by PartSummary alone

TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "a", "abbr", "b", "strong", "i", "em", "code",
        "pre", "blockquote", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td",
        "span", "div", "img", "sup", "sub", "del", "s", "kbd"}


def _attribute_allowed(tag, name, value):
    if tag == "a":
        return (name == "title" or (name == "href" and value.startswith(("http://", "https://", "mailto:", "#")))
                or (name == "class" and value == "anchor-link"))
    if tag == "img":
        return name in ("alt", "title") or (name == "src" and value.startswith("data:image/"))
    if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return name == "id"
    if tag == "code":
        return name == "class" and value.startswith("language-")
    if tag == "div":   # code blocks: "highlight hl-ipython3"
        return name == "class" and all(c == "highlight" or c.startswith("hl-") for c in value.split())
    if tag == "span":   # pygments' short token classes
        return name == "class" and bool(re.fullmatch(r"[a-z0-9]{1,3}", value))
    return tag in ("th", "td") and name == "align"


# Most of a page's text is the release's, the same on every student's page: the two filters below are
# pure functions of their text, so a recorder keeps what they made for texts up to this long (the
# release's Markdown cells are under 3,000 characters). The bound keeps what a batch of students can
# make a recorder hold small (at most 1,024 texts of 8,192 characters, and what they render to).
MEMO_CHARS, MEMO_ENTRIES = 8192, 1024


def _remembered(function):
    """``function`` of one string, its results kept for strings up to MEMO_CHARS characters."""
    kept = functools.lru_cache(maxsize=MEMO_ENTRIES)(function)
    return functools.wraps(function)(lambda text: kept(text) if len(text) <= MEMO_CHARS else function(text))


def clean_html(text):
    """Student-controlled HTML made inert: allowed tags and attributes kept, every other tag escaped."""
    return _clean_html(text.decode() if isinstance(text, bytes) else str(text))


@_remembered
def _clean_html(text):
    return bleach.clean(text, tags=TAGS, attributes=_attribute_allowed,
                        protocols={"http", "https", "mailto", "data"}, strip_comments=True)


@pass_context
def markdown2html(context, source):
    """nbconvert's Markdown rendering (math and cell attachments included), then :func:`clean_html`.

    A cell nbconvert cannot render (it names an attachment it does not have) is shown as its text."""
    attachments = context.get("cell", {}).get("attachments", {})
    if attachments or not isinstance(source, str):
        return _render_markdown(source, attachments)
    return _plain_markdown(source)


def _render_markdown(source, attachments):
    renderer = IPythonRenderer(escape=False, attachments=attachments, embed_images=False, anchor_link_text="¶")
    try:
        return clean_html(MarkdownWithMath(renderer=renderer).render(source))
    except InvalidNotebook:
        return f"<pre>{html.escape(source)}</pre>"


@_remembered
def _plain_markdown(source):
    return _render_markdown(source, {})


class ShortTracebacks(Preprocessor):
    """Replace each error output's traceback by its one-line message."""

    enabled = True

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


def _said(cell):
    """(failed, [message]) from a graded cell's outputs as the grader left them."""
    failed, messages = False, []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            failed = True
            messages.append(f"{output.get('evalue', '')}".strip() or output.get("ename", "error"))
        elif output.get("output_type") == "stream" and output.get("name") == "stdout":
            messages += [line for line in output.get("text", "").splitlines() if line.strip()]
    return failed, messages


RAISED = "your code raised "
NUMBERS = re.compile(r"\[[\d,\s]*\]|\(\s*\d[\d,\s]*\)|\d+")


def summary_rows(nb, parts):
    """[(part, first grade_id, score, points, [message])] for the parts of ``parts`` (see course.parts_of).

    A part's messages: what failed, then what passed, so that "2 / 10" says what earned the 2. An error
    the student's code raised is quoted once; later checks that ran into it again (the same error but
    for the numbers and shapes) refer to it."""
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells
             if c.metadata.get("nbgrader", {}).get("grade")}
    rows, quoted = [], {}
    for part, grade_ids in parts:
        score = points = 0.0
        failures, passes = [], []
        for gid in grade_ids:
            cell = cells.get(gid)
            if cell is None:
                continue
            meta = cell.metadata["nbgrader"]
            score += float(meta.get("score") or 0)
            points += float(meta.get("points") or 0)
            failed, messages = _said(cell)
            (failures if failed or float(meta.get("score") or 0) < float(meta.get("points") or 0)
             else passes).extend(m for m in messages if m not in failures + passes)
        if not failures and not passes:
            failures = ["no result was recorded for this part"] if score < points else []
        messages = []
        for message in failures + passes:
            head, raised, error = message.partition(RAISED)
            kind = NUMBERS.sub("#", error)   # the same mistake, whatever the shapes of this part's inputs
            if raised and kind in quoted:
                where = "" if quoted[kind] == part else f" as in {quoted[kind]}"
                message = f"{head}{RAISED}the same error{where} (see above)."
            elif raised:
                quoted[kind] = part
            messages.append(message)
        rows.append((part, grade_ids[0], score, points, messages))
    return rows


class PartSummary(Preprocessor):
    """Insert the per-part summary as the notebook's first cell (after GetGrades has set the scores).

    Its source is HTML built from escaped strings; the template puts it on the page as it is (see the
    module docstring)."""

    enabled = True

    def preprocess(self, nb, resources):
        from .. import course
        assignment = resources["nbgrader"]["assignment"]
        for other in nb.cells:   # only the cell made here is the summary
            other.metadata.pop(SUMMARY_MARK, None)
        if assignment not in course.ASSIGNMENTS:
            return nb, resources
        lines = ["<h3>Your results, part by part</h3>", '<table class="part-summary">',
                 "<tr><th>part</th><th>points</th><th>what the grader found</th></tr>"]
        for part, anchor, score, points, messages in summary_rows(nb, course.parts_of(course.source_notebook(assignment))):
            state = "full" if score >= points else "partial" if score > 0 else "none"
            text = "<br>".join(html.escape(m).replace("\n", "<br>") for m in messages)
            lines.append(f'<tr class="{state}"><td><a href="#{html.escape(anchor)}">{html.escape(part)}</a></td>'
                         f'<td class="points">{score:g} / {points:g}</td><td class="message">{text}</td></tr>')
        lines.append("</table>")
        cell = nbformat.v4.new_markdown_cell("".join(lines))
        cell.metadata[SUMMARY_MARK] = True
        nb.cells.insert(0, cell)
        return nb, resources
