"""The training cells really train: run each notebook briefly on tiny generated data.

Training needs the real data set and many minutes, so it never runs during
grading or the self-study build. Here the skipped cells are switched on,
the hyperparameters cut to one short epoch, and RESNET_DATA_DIR points at a
few generated images in the real file formats.
"""

import pytest
from nbclient import NotebookClient

from autograder import course
from autograder.assign import build
from autograder.student import data
from tiny_training import TINY, with_tiny_training

def runnable_with_tiny_training(assignment):
    return with_tiny_training(build.self_study(course.source_notebook(assignment)))


@pytest.mark.parametrize("assignment", course.assignments())
def test_training_cells_run_on_tiny_data(assignment, tmp_path, monkeypatch):
    data.write_fashion_mnist_idx(tmp_path, n_train=80, n_test=32)
    data.write_cifar10_bin(tmp_path, n_train=80, n_test=32)
    monkeypatch.setenv("RESNET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    nb = runnable_with_tiny_training(assignment)
    assert any(c.source == TINY for c in nb.cells), "the notebook needs a cell tagged 'hyperparameters'"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                        for o in c.outputs if o.output_type == "stream")
    assert "train acc" in printed or "accuracy" in printed.lower()
    assert "training skipped" not in printed.lower()
