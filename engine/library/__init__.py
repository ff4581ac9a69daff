"""The style library: styles trained from before/after pairs, their adapter weights and training
runs, kept in one folder (SQLite database plus files) that survives a kill at any moment.

Training publishes through :class:`StyleLibrary`; the studio and CLI browse it.
"""

from engine.library.archive import export_style_zip, import_style_zip, read_style_zip, style_from_zip
from engine.library.location import DEFAULT_LIBRARY, LIBRARY_VARIABLE, resolve_library
from engine.library.names import slug, validate_style_name
from engine.library.records import AdapterRecord, AdapterSource, NewStyle, PairRecord, StyleRecord
from engine.library.runs import RunRecord
from engine.library.store import Recovery, StyleLibrary

__all__ = [
    "DEFAULT_LIBRARY", "LIBRARY_VARIABLE", "AdapterRecord", "AdapterSource", "NewStyle", "PairRecord", "Recovery", "RunRecord",
    "StyleLibrary", "StyleRecord", "export_style_zip", "import_style_zip", "read_style_zip", "resolve_library", "slug", "style_from_zip",
    "validate_style_name",
]
