"""Every kind of nbgrader cell comes through `effdl course student` as real
`nbgrader generate_assignment` releases it, cell by cell."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from effdl.cli import main
from effdl.course.student import check_lesson_markup, make_student_notebook


def _meta(grade_id, *, solution=False, grade=False, locked=False, task=False, points=None):
    meta = {
        "grade": grade,
        "solution": solution,
        "locked": locked,
        "grade_id": grade_id,
        "schema_version": 3,
    }
    if task:
        meta["task"] = True
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


# One cell of each kind nbgrader's "Create Assignment" toolbar makes, plus the markups inside.
CELLS = {
    "plain-markdown": new_markdown_cell("# Every kind of cell"),
    "read-only": new_code_cell(
        "import math\nSCALE = 2", metadata=_meta("setup", locked=True), execution_count=3
    ),
    "answer-with-markers": new_code_cell(
        "def double(x):\n    ### BEGIN SOLUTION\n    return SCALE * x  # secret-double\n"
        "    ### END SOLUTION",
        metadata=_meta("double", solution=True),
    ),
    "tests-with-hidden": new_code_cell(
        "assert double(1) == 2\n### BEGIN HIDDEN TESTS\nassert double(-3) == -6  # secret-hidden\n"
        "### END HIDDEN TESTS",
        metadata=_meta("double-tests", grade=True, locked=True, points=2),
    ),
    "answer-without-markers": new_code_cell(
        "def triple(x):\n    return 3 * x  # secret-triple",
        metadata=_meta("triple", solution=True),
    ),
    "tests-without-hidden": new_code_cell(
        "assert triple(2) == 6", metadata=_meta("triple-tests", grade=True, locked=True, points=1)
    ),
    "manual-code-answer": new_code_cell(
        "def explain():\n    ### BEGIN SOLUTION\n    return 'because'  # secret-manual\n"
        "    ### END SOLUTION",
        metadata=_meta("explain", solution=True, grade=True, points=3),
    ),
    "manual-markdown-answer": new_markdown_cell(
        "The answer is 42 (secret-markdown).",
        metadata=_meta("written", solution=True, grade=True, points=2),
    ),
    "markdown-answer-with-markers": new_markdown_cell(
        "Name the trade-off.\n\n### BEGIN SOLUTION\nLatency for accuracy (secret-md-marked).\n"
        "### END SOLUTION",
        metadata=_meta("tradeoff", solution=True, grade=True, points=1),
    ),
    "task": new_markdown_cell(
        "Plot the front and describe it.\n### BEGIN MARK SCHEME\nFull marks for axes "
        "(secret-scheme).\n### END MARK SCHEME",
        metadata=_meta("plot-task", task=True, points=4),
    ),
    "plain-code": new_code_cell("print(double(2))", execution_count=9),
}
SECRETS = ("secret-double", "secret-hidden", "secret-triple", "secret-manual", "secret-markdown")
SECRETS += ("secret-md-marked", "secret-scheme")


def every_kind_notebook():
    nb = new_notebook(cells=copy.deepcopy(list(CELLS.values())))
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = kernel
    return nb


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The notebook as real `nbgrader generate_assignment` releases it, and as the kit does."""
    root = tmp_path_factory.mktemp("course")
    (root / "source" / "ps1").mkdir(parents=True)
    nbformat.write(every_kind_notebook(), root / "source" / "ps1" / "kinds.ipynb")
    # nbgrader runs the `alembic` script by name: put this interpreter's scripts first on PATH.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", "ps1"], cwd=root, env=env, check=True)
    theirs = nbformat.read(root / "release" / "ps1" / "kinds.ipynb", as_version=4)
    ours_dir = root / "student"
    assert main(["course", "student", str(root / "source" / "ps1"), str(ours_dir)]) == 0
    ours = nbformat.read(ours_dir / "kinds.ipynb", as_version=4)
    return theirs, ours


@pytest.mark.parametrize("index", range(len(CELLS)), ids=list(CELLS))
def test_each_kind_of_cell_comes_out_as_nbgrader_releases_it(released, index):
    theirs, ours = released
    assert len(theirs.cells) == len(ours.cells) == len(CELLS)
    a, b = theirs.cells[index], ours.cells[index]
    assert b.cell_type == a.cell_type
    assert b.source == a.source
    # The whole metadata: nbgrader's fields, its checksum, and the locks (deletable, editable).
    assert b.metadata == a.metadata
    assert b.get("outputs") == a.get("outputs") and b.get("execution_count") is None


def test_whole_release_is_identical_and_keeps_no_secret(released):
    theirs, ours = released
    # Nothing differs, not even notebook metadata (nbgrader drops only 'celltoolbar').
    assert nbformat.writes(ours) == nbformat.writes(theirs)
    text = nbformat.writes(ours)
    assert not [secret for secret in SECRETS if secret in text]


def test_what_nbgrader_does_to_each_kind(released):
    _, ours = released
    cells = dict(zip(CELLS, ours.cells, strict=True))
    # A solution cell without markers becomes the stub as a whole; with markers, only the region.
    assert cells["answer-without-markers"].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert cells["answer-with-markers"].source.startswith("def double(x):\n    # YOUR CODE HERE")
    assert cells["manual-markdown-answer"].source == "YOUR ANSWER HERE"
    assert cells["markdown-answer-with-markers"].source == "Name the trade-off.\n\nYOUR ANSWER HERE"
    assert cells["task"].source == "Plot the front and describe it."
    assert cells["tests-with-hidden"].source == "assert double(1) == 2"
    # Locks: grade and read-only cells cannot be edited, solution cells cannot be deleted.
    assert cells["read-only"].metadata["editable"] is False
    assert cells["tests-without-hidden"].metadata["editable"] is False
    assert cells["answer-with-markers"].metadata["deletable"] is False
    assert "editable" not in cells["answer-with-markers"].metadata
    # nbgrader checksums solution, grade and read-only cells (not task cells) to spot edits.
    summed = {k for k, c in cells.items() if "checksum" in c.metadata.get("nbgrader", {})}
    assert summed == set(CELLS) - {"plain-markdown", "task", "plain-code"}


def test_lesson_rules_name_the_cells_nbgrader_accepts_but_lessons_may_not_use():
    problems = check_lesson_markup(every_kind_notebook())
    assert len(problems) == 2
    assert "'triple'" in problems[0] and "BEGIN SOLUTION" in problems[0]
    assert "'triple-tests'" in problems[1] and "no hidden test" in problems[1]


def test_strict_flag_refuses_an_exercise_without_a_hidden_test(tmp_path, capsys):
    nb = every_kind_notebook()
    del nb.cells[4:6]  # the solution without markers and its test without hidden tests
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, src / "lesson.ipynb")
    assert main(["course", "student", "--strict", str(src), str(tmp_path / "dst")]) == 0
    nb.cells.append(
        new_code_cell("assert double(5) == 10", metadata=_meta("ex9-tests", grade=True, points=1))
    )
    nbformat.write(nb, src / "lesson.ipynb")
    assert main(["course", "student", "--strict", str(src), str(tmp_path / "dst2")]) == 2
    err = capsys.readouterr().err
    assert "lesson.ipynb" in err and "'ex9-tests'" in err and "no hidden test" in err
    assert not (tmp_path / "dst2").exists()
    # Without --strict the tool releases it, as nbgrader would.
    assert main(["course", "student", str(src), str(tmp_path / "dst3")]) == 0


@pytest.mark.parametrize(
    ("kind", "source", "message"),
    [
        ("answer-with-markers", "def f():\n    ### BEGIN SOLUTION\n    pass", "no end solution"),
        ("tests-with-hidden", "### BEGIN HIDDEN TESTS\nassert True", "No end hidden tests"),
        ("plain-code", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "non-solution cell"),
        ("task", "### BEGIN MARK SCHEME\nmarks", "No end mark scheme"),
    ],
)
def test_markup_nbgrader_refuses_is_refused_naming_the_cell(kind, source, message):
    nb = every_kind_notebook()
    index = list(CELLS).index(kind)
    nb.cells[index].source = source
    with pytest.raises(ValueError, match=rf"kinds\.ipynb: cell {index}\b.*{message}"):
        make_student_notebook(nb, name="kinds.ipynb")
