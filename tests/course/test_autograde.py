"""The instructor's round trip on a real nbgrader course directory: `effdl course init`,
`nbgrader generate_assignment`, two submissions, `nbgrader autograde`, the gradebook, feedback.

It executes one lesson twice (about a minute on two cores), so it uses the cheapest lesson.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from effdl.course.coursedir import CELL_TIMEOUT, init_course

COURSE = Path(__file__).resolve().parents[2] / "course"
# The cheapest lesson to execute; any lesson works, the test reads its cells generically.
LESSON = "01_efficient_convolutions"


def _nbgrader(*args: str, cwd: Path) -> None:
    # nbgrader runs `alembic` by name: put this interpreter's scripts first on PATH. One torch
    # thread per kernel, as in the rest of the suite.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course directory after autograding a solved and a blank submission of LESSON."""
    lessons = tmp_path_factory.mktemp("lessons")
    shutil.copyfile(COURSE / f"{LESSON}.ipynb", lessons / f"{LESSON}.ipynb")
    root = tmp_path_factory.mktemp("course")
    init_course(root, lessons)
    _nbgrader("generate_assignment", LESSON, cwd=root)
    release = root / "release" / LESSON / f"{LESSON}.ipynb"
    # "solved" hands in the instructor's notebook, "blank" the release untouched.
    for student, notebook in (("solved", COURSE / f"{LESSON}.ipynb"), ("blank", release)):
        folder = root / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        shutil.copyfile(notebook, folder / f"{LESSON}.ipynb")
    _nbgrader("autograde", LESSON, cwd=root)
    _nbgrader("generate_feedback", LESSON, cwd=root)
    return root


def _scores(root: Path, student: str) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        notebook = gb.find_submission_notebook(LESSON, LESSON, student)
        return {grade.name: (grade.score, grade.max_score) for grade in notebook.grades}


def _graded_ids() -> set[str]:
    nb = nbformat.read(COURSE / f"{LESSON}.ipynb", as_version=4)
    return {
        cell.metadata["nbgrader"]["grade_id"]
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }


def test_config_timeout_is_the_one_the_kit_ships(graded):
    shipped = (COURSE / "nbgrader_config.py").read_text()
    assert (graded / "nbgrader_config.py").read_text() == shipped
    assert f"c.Execute.timeout = {CELL_TIMEOUT}" in shipped


def test_solved_submission_scores_full_points_on_every_graded_cell(graded):
    scores = _scores(graded, "solved")
    assert set(scores) == _graded_ids() and scores
    assert {name: score for name, (score, _) in scores.items()} == {
        name: maximum for name, (_, maximum) in scores.items()
    }
    assert all(maximum > 0 for _, maximum in scores.values())


def test_blank_submission_scores_zero_on_every_graded_cell(graded):
    scores = _scores(graded, "blank")
    assert set(scores) == _graded_ids()
    assert {name: score for name, (score, _) in scores.items()} == dict.fromkeys(scores, 0)


def test_feedback_is_written_for_both_students(graded):
    for student in ("solved", "blank"):
        html = graded / "feedback" / student / LESSON / f"{LESSON}.html"
        assert html.is_file() and "Score" in html.read_text()
