"""A student's feedback page, laid out by a real browser (headless Chromium) at 1280 px.

The page nbgrader generated for a sample with mistakes is loaded with a
short script appended that measures the layout after rendering: the
per-part summary must be on top with each part's points and message, no
message may be clipped (an element narrower than its text), the page must
not scroll sideways, and nbgrader's list of "Test cell" links must be
hidden. ``--dump-dom`` returns the measurements.
"""
import html
import json
import os
import re
import shutil
import subprocess

import pytest

from autograder import course


BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None and not os.environ.get("CI"),
                                reason="Chromium is needed (scripts/env.sh installs it as root)")

MEASURE = """<script>
(function () {
  var clipped = [];
  document.querySelectorAll("div.output_area pre, table.part-summary td").forEach(function (el) {
    if (el.scrollWidth > el.clientWidth + 1) clipped.push(el.textContent.slice(0, 80));
  });
  var rows = [];
  document.querySelectorAll("table.part-summary tr").forEach(function (tr, i) {
    if (i > 0) rows.push([].map.call(tr.cells, function (td) { return td.innerText; }));
  });
  var summary = document.querySelector("table.part-summary");
  var firstCell = document.querySelector("div.cell");
  var out = document.createElement("pre");
  out.id = "layout-check";
  out.textContent = JSON.stringify({
    clipped: clipped, rows: rows, pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth, toc: getComputedStyle(document.getElementById("toc")).display,
    summaryFirst: !!(summary && firstCell && firstCell.contains(summary))});
  document.body.appendChild(out);
})();
</script>"""


def measure(page, tmp_path):
    copy = tmp_path / "page.html"
    copy.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    done = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1280,900", "--dump-dom", copy.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def test_feedback_page_reads_well_in_a_browser(graded_samples, tmp_path):
    course_dir, results = graded_samples
    page = course_dir / "feedback" / "relu_before_add" / "resnet18" / "resnet18.html"
    layout = measure(page, tmp_path)
    assert layout["summaryFirst"] and layout["toc"] == "none"
    maxima = course.max_scores("resnet18")
    scores = results["resnet18"]["relu_before_add"]
    assert [row[0] for row in layout["rows"]] == list(maxima)
    assert [row[1] for row in layout["rows"]] == [f"{scores[p]:g} / {maxima[p]:g}" for p in maxima]
    residual = layout["rows"][0][2]
    assert "add first, then ReLU" in residual and "Traceback" not in residual
    assert all(row[2].startswith("passed") for row, p in zip(layout["rows"], maxima) if scores[p] == maxima[p])
    assert layout["clipped"] == []
    assert layout["pageWidth"] <= layout["viewport"]
