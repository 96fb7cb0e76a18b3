"""nbconvert's HTML export of the feedback pages, its last step and its highlighting done once per distinct cell.

nbconvert's ``HTMLExporter`` ends every page with a BeautifulSoup round trip:
it parses the whole page (``html.parser``), gives images without a text one,
and writes the tree out again. On a feedback page that is about 40 % of the
page's cost, and most of it is spent on the same cells again and again: the
release's text and the instructor's test cells are on every student's page.

:class:`FeedbackPageExporter` is nbconvert's exporter; only while it writes a
page, the soup nbconvert makes is a :class:`_PageSoup`. That cuts the page
before each cell, and a cell whose parse cannot depend on what surrounds it
(checked on the cell's own parse, below) is parsed and written once per
recorder process; the page is parsed with a placeholder in its place, and
the cell's text goes back where the placeholder is written. The result is
the page nbconvert writes, byte for byte (``tests/test_page_export.py``
compares both on a real page, with hostile markup anywhere, and
``tests/test_recording.py`` on the samples' pages); where a check
fails, that cell, or the whole page, is parsed in place as nbconvert does.

A cell's parse stands alone when, parsed alone with bs4's ``html.parser``
tree builder:

* the tokenizer ends it in its data state (no unfinished tag, comment or
  script), so the next cell is read as it would be;
* every end tag closes a tag the cell opened, and none stays open: in the
  page, the cell's tags are then closed by the same end tags and leave the
  page's open tags as they were;
* none of the page's selectors can pick anything in it (an image without a
  text, an element nbconvert marks as focusable);

and, on the page: its placeholder comment is read as a comment, in no
element that keeps whitespace or holds raw text (``pre``, ``textarea``,
``script``, ``style``, ``template``), where bs4 reads strings differently.
The placeholder holds a random token per page, so a student's text cannot
imitate one.

The code cells' syntax highlighting (Pygments, about a quarter of a page's
cost) is also kept per process, by source and language
(:class:`_RememberedHighlight`).
"""
import functools
import inspect
import re
import secrets

import nbconvert.exporters.html as nbconvert_html
from bs4 import BeautifulSoup, Comment
from bs4.builder._htmlparser import BeautifulSoupHTMLParser, HTMLParserTreeBuilder
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.highlight import Highlight2HTML

# What nbconvert's HTMLExporter.from_notebook_node selects on its soup (nbconvert 7), each with the
# part of it that an element inside a cell must match to be picked: a cell is kept only if nothing in
# it matches that part, whatever the page around it holds.
SELECTORS = {"img:not([alt])": "img:not([alt])",
             ".jp-Notebook div.jp-Cell-inputWrapper": "div.jp-Cell-inputWrapper",
             ".jp-Notebook div.jp-OutputArea-output": "div.jp-OutputArea-output"}
CELL_START = re.compile(r'(?=<div (?:id="[^"<>]*" )?class="cell border-box-sizing )')
# Cells kept per process: the release's cells, and the unchanged cells of the students, are few.
MEMO_CELLS, MEMO_CHARS = 2048, 65536


def _nbconvert_selects_only_known():
    """Whether nbconvert's page step selects nothing but SELECTORS (else pages are parsed whole)."""
    try:
        source = inspect.getsource(HTMLExporter.from_notebook_node)
    except (OSError, TypeError):
        return False
    return "BeautifulSoup(html" in source and set(re.findall(r'\.select\("([^"]*)"\)', source)) <= set(SELECTORS)


class _ProbedSoup(BeautifulSoup):
    """A soup that notes an end tag which closed nothing (in a page, it could close an outer tag)."""
    closes_outside = False

    def handle_endtag(self, name, nsprefix=None):
        depth = len(self.tagStack)
        super().handle_endtag(name, nsprefix)
        if len(self.tagStack) == depth:
            self.closes_outside = True


class _ProbingParser(BeautifulSoupHTMLParser):
    def feed(self, data):
        super().feed(data)
        # Before close(): everything read, no script or style left open, no tag left open; and the
        # void tags (<br>) whose end tag (</br>) the parser will now skip, as it would after this cell.
        self.soup.ends_clean = not self.rawdata and self.cdata_elem is None and len(self.soup.tagStack) == 1
        self.soup.void_left = tuple(self.already_closed_empty_element)


class _ProbingBuilder(HTMLParserTreeBuilder):
    def feed(self, markup, _parser_class=None):
        super().feed(markup, _parser_class=_ProbingParser)


class _PlaceholderParser(BeautifulSoupHTMLParser):
    """bs4's parser, which takes each placeholder for its cell's effect on what comes later: the
    void tags it leaves, whose end tags bs4 then skips rather than treating as an end tag."""

    def handle_comment(self, data):
        super().handle_comment(data)
        self.already_closed_empty_element.extend(self.soup.builder.void_left.get(data, ()))

    def feed(self, data):
        super().feed(data)
        # Before close(): nothing left unfinished (a "<![CDATA[" whose end was in a placeholder's cell
        # would now be read to its next ">" instead).
        self.soup.builder.read_all = not self.rawdata


class _PlaceholderBuilder(HTMLParserTreeBuilder):
    def __init__(self, void_left):
        super().__init__()
        self.void_left, self.read_all = void_left, False

    def feed(self, markup, _parser_class=None):
        super().feed(markup, _parser_class=_PlaceholderParser)


@functools.lru_cache(maxsize=MEMO_CELLS)
def _cell_alone(text):
    """(``text``, one cell of a page, written as bs4 writes it; the void tags it leaves), or None
    when its parse may depend on the page around it."""
    soup = _ProbedSoup(text, builder=_ProbingBuilder())
    if soup.closes_outside or not getattr(soup, "ends_clean", False):
        return None
    if any(soup.select_one(part) is not None for part in SELECTORS.values()):
        return None
    return str(soup), soup.void_left


def _cell(text):
    return _cell_alone(text) if len(text) <= MEMO_CHARS else None


class _PageSoup:
    """What nbconvert's page step uses of a BeautifulSoup (``select``, ``str``), made cell by cell."""

    def __init__(self, html, features=None):
        token = secrets.token_hex(16)
        head, *cells = CELL_START.split(html)
        parts, self._kept, void_left = [head], {}, {}
        for index, cell in enumerate(cells):
            alone = _cell(cell) if index < len(cells) - 1 else None  # the last one ends the page
            if alone is None:
                parts.append(cell)
            else:
                marker = f"page-cell-{token}-{index}"
                parts.append(f"<!--{marker}-->")
                self._kept[marker], void_left[marker] = alone
        self._marker = re.compile(f"<!--(page-cell-{token}-[0-9]+)-->")
        self._soup = BeautifulSoup("".join(parts), builder=_PlaceholderBuilder(void_left))
        if self._kept and not self._markers_stand_alone():
            self._soup, self._kept = BeautifulSoup(html, features=features), {}

    def _markers_stand_alone(self):
        special = set(self._soup.builder.preserve_whitespace_tags) | set(self._soup.builder.string_containers)
        found = [c for c in self._soup.find_all(string=lambda s: isinstance(s, Comment)) if str(c) in self._kept]
        return (self._soup.builder.read_all and len(found) == len(self._kept) == len({str(c) for c in found})
                and not any(parent.name in special for c in found for parent in c.parents))

    def select(self, selector):
        assert selector in SELECTORS, selector  # _nbconvert_selects_only_known() was checked
        return self._soup.select(selector)

    def __str__(self):
        text = str(self._soup)
        if not self._kept:
            return text
        return self._marker.sub(lambda match: self._kept[match.group(1)], text)


class _RememberedHighlight:
    """nbconvert's code highlighting, each result kept per process (the release's and the tests'
    code is on every page). Pygments' output depends on nothing but the source, the language (the
    call's, else the notebook's), a cell's ``magics_language`` and the formatter's options."""

    def __init__(self, highlight):
        self.highlight = highlight

    def __call__(self, source, language=None, metadata=None):
        key = (source, language or self.highlight.pygments_lexer,
               metadata.get("magics_language") if metadata else None,
               repr(sorted(self.highlight.extra_formatter_options.items())))
        if key not in _HIGHLIGHTED:
            html = self.highlight(source, language, metadata)
            if len(source) > MEMO_CHARS or len(_HIGHLIGHTED) >= MEMO_CELLS:
                return html
            _HIGHLIGHTED[key] = html
        return _HIGHLIGHTED[key]


_HIGHLIGHTED = {}


class FeedbackPageExporter(HTMLExporter):
    """nbconvert's HTMLExporter, writing the same pages faster (see the module's docstring)."""

    def register_filter(self, name, jinja_filter):
        if name == "highlight_code" and type(jinja_filter) is Highlight2HTML:
            jinja_filter = _RememberedHighlight(jinja_filter)
        return super().register_filter(name, jinja_filter)

    def from_notebook_node(self, nb, resources=None, **kw):
        if not _USABLE:
            return super().from_notebook_node(nb, resources, **kw)
        nbconvert_html.BeautifulSoup = _PageSoup
        try:
            return super().from_notebook_node(nb, resources, **kw)
        finally:
            nbconvert_html.BeautifulSoup = BeautifulSoup


_USABLE = _nbconvert_selects_only_known() and getattr(nbconvert_html, "BeautifulSoup", None) is BeautifulSoup
