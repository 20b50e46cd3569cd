"""An nbgrader course directory of the kit's lessons: `effdl course init DIR`.

nbgrader reads an assignment from `source/<assignment>/<notebook>.ipynb` under the folder that
holds `nbgrader_config.py`. `init_course` makes one assignment per lesson, named after the
lesson's file, and writes `NBGRADER_CONFIG`, whose per-cell timeout fits the lessons' training
cells (nbgrader's default of 30 s stops lesson 00). The kit ships the same file as
`course/nbgrader_config.py`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Seconds one cell may run under `nbgrader autograde`; nbval allows lessons the same.
CELL_TIMEOUT = 300

NBGRADER_CONFIG = f'''"""nbgrader configuration for a course directory of effdl lessons.

Run nbgrader from the folder that holds this file: `nbgrader generate_assignment LESSON`,
`nbgrader autograde LESSON`, `nbgrader generate_feedback LESSON`, with each lesson's notebook in
`source/LESSON/LESSON.ipynb` (`effdl course init DIR` lays a folder out so).
"""

c = get_config()  # noqa: F821 (nbgrader defines get_config when it loads this file)

# nbgrader's default of 30 s per cell stops the lessons' training cells; nbval allows 300 s.
c.Execute.timeout = {CELL_TIMEOUT}
'''


def lessons_folder() -> Path:
    """Return the kit's `course/` folder of lesson notebooks, beside the `effdl` package.

    It exists in a source checkout (and an editable install); a wheel ships only the package.

    Source: the kit's layout (README, "Layout").
    """
    return Path(__file__).resolve().parents[2] / "course"


def init_course(directory: str | Path, lessons: str | Path | None = None) -> list[Path]:
    """Return the notebooks placed in a new nbgrader course directory at `directory`.

    Writes `directory/nbgrader_config.py` (`NBGRADER_CONFIG`) and, for each `lessons/*.ipynb`,
    `directory/source/<stem>/<stem>.ipynb`: one nbgrader assignment per lesson.

    Parameters
    ----------
    directory : the course directory; a new or empty folder.
    lessons : folder of instructor notebooks; the kit's `course/` folder when None.

    Raises
    ------
    ValueError : `directory` is a file or a non-empty folder, or `lessons` is not a folder of
        notebooks.

    Source: nbgrader documentation, "Setting up a course directory" (source/<assignment>/).
    """
    root = Path(directory)
    src = lessons_folder() if lessons is None else Path(lessons)
    if root.exists() and not root.is_dir():
        raise ValueError(f"directory must be a new or empty folder, got the file '{directory}'")
    if root.is_dir():
        entries = sorted(entry.name for entry in root.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise ValueError(
                f"directory must be a new or empty folder, got '{directory}', which holds "
                f"{len(entries)} entries ({shown}); nothing was written"
            )
    if not src.is_dir():
        where = " (the kit's course/ folder is in a checkout)" if lessons is None else ""
        raise ValueError(f"lessons must be a folder of lesson notebooks, got '{src}'{where}")
    notebooks = sorted(path for path in src.glob("*.ipynb") if path.is_file())
    if not notebooks:
        raise ValueError(f"lessons must be a folder of lesson notebooks, '{src}' holds no *.ipynb")

    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    placed = []
    for notebook in notebooks:
        target = root / "source" / notebook.stem / notebook.name
        target.parent.mkdir(parents=True)
        shutil.copyfile(notebook, target)
        placed.append(target)
    return placed
