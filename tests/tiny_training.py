"""Switch a notebook's training on and cut it to one tiny epoch (shared by the training tests)."""
import nbformat

TINY = "num_epochs, batch_size = 1, 16"


def with_tiny_training(nb):
    """``nb`` with the ``skip-execution`` tags removed and ``TINY`` after the hyperparameters cell."""
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        cell.metadata["tags"] = [t for t in tags if t != "skip-execution"]
        cells.append(cell)
        if "hyperparameters" in tags:
            cells.append(nbformat.v4.new_code_cell(TINY))
    nb.cells = cells
    return nb
