"""The notebooks teach right: every hint's code runs, every expected output is what the reference
prints, the book reads as a book and runs in order with the training skipped, the digits experiment's
measured outputs are in the self-study edition, and the Sources are everywhere they must be.

The notebooks run here as a reader runs the book built from source/ (the reference answers in place),
in a real kernel: the code of each hint is run as a cell right after the text that gives it, so in the
notebook's own namespace (where ``np`` is ``mxnet.np``). A hint's code is its ```python blocks, and
every inline expression in it that calls or indexes something (``nn.BatchNorm()``, ``X[:, :, ::2]``);
names alone (``np.zeros``) and sketches with ``...`` are pointers, not code to run.
"""
import ast
import re

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import course
from autograder.assign import build, sources
from autograder.assign.publish import publish

FENCED = re.compile(r"```(\w*)\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`\n]+)`")
EXPECTED = "**Expected output"
# The cells that train on the real data sets: a reader may skip them, so the book must run without them.
TRAINING = {"code-30", "train_run"}
# The digits experiment trains for a minute; its outputs are checked in the committed book instead.
SLOW = {"digits-run"}


HINT = re.compile(r"\*(?:Hint|Note):\*(.*?)(?:\n\s*\n(?=\S)(?!```)|\Z)", re.S)


def runnable(span):
    """Whether an inline code span is an expression that does something (a call or an index)."""
    try:
        tree = ast.parse(span, mode="eval")
    except SyntaxError:
        return False
    nodes = list(ast.walk(tree))
    return (any(isinstance(n, (ast.Call, ast.Subscript)) for n in nodes)
            and not any(isinstance(n, ast.Constant) and n.value is Ellipsis for n in nodes))


def hint_blocks(cell):
    """The code of the hints in a markdown cell: fenced python blocks, and runnable inline expressions."""
    code = [block for language, block in FENCED.findall(cell.source) if language == "python"]
    for hint in HINT.findall(cell.source):
        prose = FENCED.sub("", hint)
        code += [f"_hint = {span}" for span in INLINE.findall(prose) if runnable(span)]
    return code


@pytest.fixture(scope="module", params=course.assignments())
def book_run(request, tmp_path_factory):
    """(assignment, the built book executed with its hint cells, training skipped, plots run)."""
    assignment = request.param
    nb = build.self_study(course.source_notebook(assignment))
    cells = []
    for cell in nb.cells:
        if cell.id in TRAINING | SLOW:
            continue
        tags = cell.metadata.get("tags", [])
        cell.metadata["tags"] = [t for t in tags if t != "skip-execution"]  # plots and predictions run too
        cells.append(cell)
        for number, code in enumerate(hint_blocks(cell)):
            cells.append(nbformat.v4.new_code_cell(code, id=f"hint-{cell.id}-{number}", metadata={"tags": ["hint"]}))
    nb.cells = cells
    folder = tmp_path_factory.mktemp(assignment)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return assignment, nb


def output_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", "") + "\n")
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}\n")
    return "".join(parts)


def expectations(cell):
    """What an expected-output text promises: the lines of its fenced block (``…`` for any number),
    or else the inline code of its first sentence."""
    text = cell.source[cell.source.index(EXPECTED):]
    blocks = [code for language, code in FENCED.findall(text) if not language]
    if blocks:
        return [line.rstrip() for line in blocks[0].strip("\n").splitlines()], True
    first_sentence = re.split(r"\.\s", text, maxsplit=1)[0]
    return INLINE.findall(first_sentence), False


def line_pattern(line):
    return re.compile(re.escape(line).replace("…", r"-?[0-9.]+(?:e-?\d+)?") + r"\s*")


def test_every_hint_has_code_that_runs(book_run):
    assignment, nb = book_run
    hints = [c for c in nb.cells if "hint" in c.metadata.get("tags", [])]
    assert len(hints) >= 3, f"{assignment}: hints with code not found"
    for cell in hints:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, (cell.id, cell.source, errors and errors[0].evalue)


def test_every_expected_output_is_what_the_reference_prints(book_run):
    assignment, nb = book_run
    since_last, checked = [], 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "hint" not in cell.metadata.get("tags", []):
            since_last.append(cell)
        elif cell.cell_type == "markdown" and EXPECTED in cell.source:
            printed = "".join(output_text(c) for c in since_last)
            promised, as_lines = expectations(cell)
            assert promised, (cell.id, "an expected output that promises nothing checkable")
            if as_lines:
                lines = [line.rstrip() for line in printed.splitlines()]
                patterns = [line_pattern(line) for line in promised]
                assert any(all(p.fullmatch(lines[i + k]) for k, p in enumerate(patterns))
                           for i in range(len(lines) - len(patterns) + 1)), (cell.id, promised, printed)
            else:
                for snippet in promised:
                    assert snippet in printed, (cell.id, snippet, printed)
            since_last, checked = [], checked + 1
    assert checked >= 6, f"{assignment}: only {checked} expected outputs found"


def test_the_book_runs_in_order_with_the_training_skipped(book_run):
    assignment, nb = book_run
    errors = [(c.id, o.ename, o.evalue) for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []


def test_hint_code_is_found_in_fences_and_inline():
    cell = nbformat.v4.new_markdown_cell("Text `a(1)`.\n\n*Hint:* use `nn.BatchNorm()` or `X[:, ::2]`, not "
                                         "`np.zeros` or `f(...)`:\n\n```python\nprint(1)\n```\n\nLater `b(2)`.")
    assert hint_blocks(cell) == ["print(1)\n", "_hint = nn.BatchNorm()", "_hint = X[:, ::2]"]


def test_an_expected_output_check_can_fail():
    cell = nbformat.v4.new_markdown_cell("**Expected output:**\n\n```\nepoch 1: loss …, accuracy …\n```\n")
    promised, as_lines = expectations(cell)
    assert as_lines and line_pattern(promised[0]).fullmatch("epoch 1: loss 2.31, accuracy 0.125")
    assert not line_pattern(promised[0]).fullmatch("epoch 1: loss nan, accuracy 0.125")
    assert expectations(nbformat.v4.new_markdown_cell("**Expected output:** `(1, 10)`. Then `x`."))[0] == ["(1, 10)"]


@pytest.mark.parametrize("assignment", course.assignments())
def test_the_book_reads_as_a_book(assignment):
    nb = build.self_study(course.source_notebook(assignment))
    text = "\n".join(c.source for c in nb.cells)
    for wording in ("Exercise", "Hint", "passed:", "not attempted", "YOUR CODE", "your numbers"):
        assert wording not in text, wording
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "check." not in code and "as check" not in code
    committed = nbformat.read(course.SELF_STUDY / f"{assignment}.ipynb", as_version=4)
    printed = "".join(output_text(c) for c in committed.cells if c.cell_type == "code")
    assert "passed" not in printed


def test_the_experiment_and_its_measured_outputs_are_in_the_self_study_edition(tmp_path):
    publish("self-study", tmp_path / "book", "example-course/resnet-book")
    nb = nbformat.read(tmp_path / "book" / "notebooks" / "resnet18.ipynb", as_version=4)
    (run,) = [c for c in nb.cells if c.get("id") in SLOW]
    printed = output_text(run)
    losses = {name: float(loss) for name, loss in
              re.findall(r"^\s*(.+?): training loss [0-9.]+ after epoch 1, ([0-9.]+) after epoch \d+$", printed, re.M)}
    assert set(losses) == {"shallow plain, 2 blocks", "deep plain, 12 blocks", "deep residual, 12 blocks"}
    assert any("image/png" in o.get("data", {}) for o in run.outputs), "the loss curves are drawn"
    # what the text says the run shows is what the committed run shows
    assert losses["deep plain, 12 blocks"] > 2 * losses["shallow plain, 2 blocks"]
    assert losses["deep residual, 12 blocks"] < losses["deep plain, 12 blocks"] / 2


def test_the_sources_are_everywhere(tmp_path):
    readme = (course.ROOT / "README.md").read_text()
    assert sources.SOURCES in readme
    for link in sources.LINKS:
        assert link in sources.SOURCES
    for assignment in course.assignments():
        for path in (course.source_notebook(assignment), course.SELF_STUDY / f"{assignment}.ipynb",
                     course.RELEASE / assignment / f"{assignment}.ipynb"):
            cells = nbformat.read(path, as_version=4).cells
            assert [c.source for c in cells if c.get("id") == "sources"] == [sources.SOURCES.strip("\n")], path
    for edition in ("students", "self-study"):
        publish(edition, tmp_path / edition, "example-course/resnet-" + edition)
        assert (tmp_path / edition / "README.md").read_text().endswith(sources.SOURCES)
