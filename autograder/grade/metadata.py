"""nbgrader's cell-metadata check, without re-checking its schema for every cell.

nbgrader's CheckCellMetadata validates each cell's nbgrader metadata with
``jsonschema.validate``, which first checks the JSON schema itself: for every
cell of every notebook, about a tenth of what recording a verdict costs. A
cell's check depends only on its type and its nbgrader metadata, and every
submission restored on the release's skeleton carries the same metadata, so
:class:`CheckCellMetadataOnce` (used by the batch grader's recorders, see
nbgrader_config.py) runs nbgrader's own check once per distinct (type,
metadata) in a recorder process and remembers only the ones that passed
silently; anything else is checked, logged and refused exactly as nbgrader does.
"""
import json
import traceback

from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import CheckCellMetadata


class _RememberingValidator(MetadataValidator):
    passed = set()  # (cell type, metadata as JSON) that nbgrader's check accepted without a warning

    def validate_cell(self, cell):
        meta = cell.metadata.get("nbgrader")
        key = meta is not None and (cell.cell_type, json.dumps(meta, sort_keys=True))
        if key in self.passed:
            return
        super().validate_cell(cell)
        if key and meta.get("cell_type", cell.cell_type) == cell.cell_type:  # else nbgrader warns each time
            self.passed.add(key)


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's CheckCellMetadata (the same messages) with :class:`_RememberingValidator`."""

    def preprocess(self, nb, resources):
        try:
            _RememberingValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources
