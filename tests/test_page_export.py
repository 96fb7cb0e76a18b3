"""The feedback pages' exporter writes, byte for byte, the page nbconvert's HTMLExporter writes.

``FeedbackPageExporter`` does nbconvert's last step (a BeautifulSoup pass over
the whole page) once per distinct cell (``autograder/grade/page_export.py``).
These tests compare it with nbconvert's own exporter: on a notebook full of
hostile HTML, and on a real feedback page into which tags, comments, CDATA
sections, scripts, unclosed and stray end tags are inserted at random places
(seeded), cell boundaries included. ``tests/test_recording.py`` compares the
recorders' pages with those of ``nbgrader generate_feedback`` run with
nbconvert's exporter.
"""
import random

import nbconvert.exporters.html as nbconvert_html
import nbformat
import pytest
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter
from nbgrader.converters import GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder import course
from autograder.grade import page_export
from autograder.grade.page_export import FeedbackPageExporter

HOSTILE = ["</div>", "<div>", "<pre>", "</pre>", "<pre>  x  \n  </pre>", "<script>", "</script>", "<style>",
           "</style>", "<!--", "-->", "<textarea>", "</textarea>", "<template>", "<title>", "</title>",
           '<div class="cell border-box-sizing code_cell rendered">',
           '<div id="x" class="cell border-box-sizing text_cell rendered">', "<img src=x>", "<img alt=y>",
           "<img>", "<br>", "</br>", "<p>", "</p>", "&amp", "&nbsp;", "&#128;", "&", "&#", "<", "</", ">",
           "<!DOCTYPE html>", '<div class="jp-Notebook"><div class="jp-Cell-inputWrapper">',
           '<div class="jp-OutputArea-output">', "<![CDATA[", "]]>", "<![if x]>", "]>", "<?pi ?>", "<?x",
           "<!x", "<span>", "</span>", "\n   \n", "<html>", "</html>", "<body>", "</body>",
           "<table><tr><td>", "</td></tr></table>", "<a href='x'", "'", '"']


def nbconvert_page(soup):
    """What nbconvert's HTMLExporter does with its soup (nbconvert 7), and the page it writes."""
    for element in soup.select("img:not([alt])"):
        element.attrs["alt"] = "No description has been provided for this image"
    for selector in (".jp-Notebook div.jp-Cell-inputWrapper", ".jp-Notebook div.jp-OutputArea-output"):
        for element in soup.select(selector):
            element.attrs["tabindex"] = "0"
    return str(soup)


@pytest.fixture(scope="module")
def page():
    """The HTML a feedback page holds before nbconvert's soup step: the release rendered with the
    course's feedback template, as nbgrader's generate_feedback sets it up."""
    nb = nbformat.read(course.RELEASE / "resnet18" / "resnet18.ipynb", as_version=4)
    for cell in nb.cells:  # plain cells: a graded cell's score box needs the gradebook
        cell.metadata.pop("nbgrader", None)
    seen = []

    def keep(html, features=None):
        seen.append(html)
        return BeautifulSoup(html, features=features)

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course.ROOT)).load_config()
    converter = GenerateFeedback(coursedir=CourseDirectory(root=str(course.ROOT), config=config), config=config)
    nbconvert_html.BeautifulSoup = keep
    try:
        HTMLExporter(parent=converter, config=converter.config).from_notebook_node(nb, resources={"nbgrader": {
            "notebook": "resnet18", "score": 0, "max_score": 100, "late_penalty": 0}})
    finally:
        nbconvert_html.BeautifulSoup = BeautifulSoup
    return seen[-1]


def test_the_exporter_uses_its_cell_by_cell_soup_on_this_nbconvert():
    assert page_export._USABLE


def test_a_real_page_is_the_same_and_its_cells_are_parsed_once(page):
    cells = len(page_export.CELL_START.split(page)) - 1
    assert cells > 40
    soup = page_export._PageSoup(page, features="html.parser")
    assert len(soup._kept) == cells - 1  # all but the last, which ends the page
    assert nbconvert_page(soup) == nbconvert_page(BeautifulSoup(page, features="html.parser"))


@pytest.mark.parametrize("seed", range(4))
def test_hostile_markup_anywhere_gives_the_same_page(page, seed):
    rng = random.Random(seed)
    for _ in range(20):
        html = page
        for _ in range(rng.randint(1, 10)):
            at = rng.randrange(len(html))
            if rng.random() < 0.3:  # right before a cell, where the page is cut
                at = max(0, html.find('<div class="cell border-box-sizing', at))
            html = html[:at] + rng.choice(HOSTILE) + html[at:]
        want = nbconvert_page(BeautifulSoup(html, features="html.parser"))
        assert nbconvert_page(page_export._PageSoup(html, features="html.parser")) == want


REACHING = [("<![CDATA[", "]]>"), ("<![if x]>", "]>"), ("<!--", "-->"), ("<script>", "</script>"),
            ("<style>", "</style>"), ("<textarea>", "</textarea>"), ("<title>", "</title>"), ("<pre>", "</pre>"),
            ("<div>", "</div>"), ("<br>", "<p>\n</br>  </p>"), ("<img>", "<p> </img> </p>"), ("<a href='", "'>")]


@pytest.mark.parametrize("opening, closing", REACHING)
def test_markup_opened_in_one_cell_and_closed_in_a_later_one_gives_the_same_page(page, opening, closing):
    """What one cell opens (a CDATA section, a comment, a script, a <pre>, a <br> whose end tag bs4
    then skips) and a later cell closes, each at the start of its cell's text."""
    cells = page_export.CELL_START.split(page)
    for first, later in [(3, 4), (3, 9), (10, len(cells) - 2), (1, len(cells) - 1)]:
        edited = list(cells)
        for index, text in ((first, opening), (later, closing)):
            at = edited[index].index(">") + 1
            edited[index] = edited[index][:at] + text + edited[index][at:]
        html = "".join(edited)
        want = nbconvert_page(BeautifulSoup(html, features="html.parser"))
        assert nbconvert_page(page_export._PageSoup(html, features="html.parser")) == want, (first, later)


def test_hostile_cells_through_the_exporters_give_the_same_bytes():
    """Markdown and raw cells and outputs (not sanitised here: nbconvert's defaults) full of markup
    that reaches across cells."""
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_markdown_cell("# A title\n\nSome *text* and an image ![x](data:image/png;base64,AA==)")]
    for piece in HOSTILE:
        cells.append(nbformat.v4.new_markdown_cell(f"text {piece} more"))
        cells.append(nbformat.v4.new_raw_cell(piece, metadata={"format": "text/html"}))
        code = nbformat.v4.new_code_cell("x = 1")
        code.outputs = [nbformat.v4.new_output("display_data", {"text/html": f"<b>{piece}</b>"}),
                        nbformat.v4.new_output("stream", name="stdout", text=piece)]
        cells.append(code)
    cells.append(nbformat.v4.new_markdown_cell("the end"))
    nb.cells = cells
    for _ in range(2):  # the second time, every cell's parse comes from the exporter's memory
        want, _ = HTMLExporter().from_notebook_node(nb)
        got, _ = FeedbackPageExporter().from_notebook_node(nb)
        assert got == want
    assert nbconvert_html.BeautifulSoup is BeautifulSoup  # put back after each page


def test_remembered_highlighting_tells_languages_magics_and_formatter_options_apart():
    """One source highlighted as the notebook's language, as a cell magic's language, in a
    notebook of another language and with other formatter options: each page is nbconvert's
    (the highlighting kept from an earlier page must not be reused where it would differ)."""
    source = "echo $HOME  # x = [1, 2]\nfor f in *; do echo \"$f\"; done"

    def notebook(lexer):
        nb = nbformat.v4.new_notebook(metadata={"language_info": {"name": "python", "pygments_lexer": lexer}})
        nb.cells = [nbformat.v4.new_code_cell(source),
                    nbformat.v4.new_code_cell(source, metadata={"magics_language": "bash"})]
        return nb
    options = [{}, {"linenos": "inline"}]
    pages = set()
    for lexer in ("ipython3", "bash", "ipython3"):
        for extra in options:
            config = {"Highlight2HTML": {"extra_formatter_options": extra}}
            nb = notebook(lexer)
            want, _ = HTMLExporter(config=Config(config)).from_notebook_node(nb)
            got, _ = FeedbackPageExporter(config=Config(config)).from_notebook_node(nb)
            assert got == want, (lexer, extra)
            pages.add(want.replace(nb.cells[0].id, "").replace(nb.cells[1].id, ""))
    assert len(pages) == 4  # the cases differ: a memory keyed on the source alone would fail above
    assert page_export._HIGHLIGHTED  # and the exporter did remember
