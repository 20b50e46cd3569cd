"""Every exercise of every lesson fails its grade cell when it is answered with the library's
one call (the "oracle" the grade cell forbids), and passes with the real solution.

Each lesson has a module `tests/notebooks/cheats/<lesson stem>.py` whose `CHEATS` maps the
grade_id of each solution cell to a one-call answer: the same function, written by calling the
kit or torch instead of tensor operations. The test puts every cheat in its solution cell at
once, runs the exercise cells (the setup cell, cells tagged "exercise-setup" and the nbgrader
cells, as the student-version check does) and expects exactly the cheated exercises' grade
cells to fail.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

from effdl.course.student import check_exercises_raise

COURSE = Path(__file__).resolve().parents[2] / "course"
LESSONS = sorted(COURSE.glob("*.ipynb"))
CHEATS = Path(__file__).resolve().parent / "cheats"


def _load_cheats(stem: str) -> dict[str, str]:
    path = CHEATS / f"{stem}.py"
    assert path.exists(), f"lesson {stem} has no one-call answers in {path}"
    spec = importlib.util.spec_from_file_location(f"cheats_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CHEATS


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _grade_cell_after(cells, index: int) -> int:
    """The index of the first autograded test cell after the solution cell at `index`."""
    for later in range(index + 1, len(cells)):
        meta = _nbgrader(cells[later])
        if meta.get("grade") and not meta.get("solution"):
            return later
    raise AssertionError(f"solution cell {index} has no grade cell after it")


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_one_call_answers_fail_their_grade_cells(lesson):
    cheats = _load_cheats(lesson.stem)
    nb = nbformat.read(lesson, as_version=4)
    solutions = {
        _nbgrader(cell)["grade_id"]: index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and _nbgrader(cell).get("solution")
    }
    assert set(cheats) == set(solutions), (
        f"{lesson.name}: cheats for {sorted(cheats)}, solution cells {sorted(solutions)}"
    )
    for grade_id, source in cheats.items():
        nb.cells[solutions[grade_id]].source = source
    expected = {_grade_cell_after(nb.cells, index) for index in solutions.values()}

    run = check_exercises_raise(nb, timeout=300, cwd=COURSE, cells="exercises")

    failed = run.error_names
    assert set(failed) == expected, (
        f"{lesson.name}: cells that raised {failed}; expected exactly the grade cells "
        f"{sorted(expected)} to fail"
    )
    # The grade cells fail because the oracle is blocked or the answer is wrong: an assertion,
    # never a crash of the test's own code.
    assert set(failed.values()) == {"AssertionError"}, failed
