"""The student version: nbgrader's preprocessors on a whole folder, checked and really executed."""

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.apps import NbGraderAPI
from traitlets.config import Config

from effdl.course.student import (
    STUB_RAISE,
    check_exercises_raise,
    check_lesson_markup,
    check_student_notebook,
    make_student_notebook,
    make_student_version,
)

# Distinctive strings that must never reach a student.
SQUARE_SOLUTION = "return x * x  # square-solution"
HYPOT_SOLUTION = "return math.sqrt(a * a + b * b)  # hypot-solution"
HIDDEN_SQUARE = "assert square(-7) == 49  # hidden-square"
HIDDEN_HYPOT = "assert hypotenuse(5, 12) == 13  # hidden-hypot"

SOLUTION_CELLS = (2, 4)  # indices in the notebook built below
GRADE_CELLS = (3, 5)


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, points: int = 0) -> dict:
    meta = {
        "grade": grade,
        "solution": solution,
        "locked": not solution,
        "grade_id": grade_id,
        "schema_version": 3,
    }
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def instructor_notebook() -> nbformat.NotebookNode:
    """A lesson with prose, a setup cell and two exercises, each a solution and a grade cell."""
    setup = new_code_cell("import math\nprint('ready')", execution_count=1)
    setup.outputs = [new_output("stream", name="stdout", text="ready\n")]
    cells = [
        new_markdown_cell("# Squares and hypotenuses\nTwo small exercises."),
        setup,
        new_code_cell(
            f"def square(x):\n    ### BEGIN SOLUTION\n    {SQUARE_SOLUTION}\n    ### END SOLUTION",
            metadata=_meta("square", solution=True),
        ),
        new_code_cell(
            f"assert square(3) == 9\n### BEGIN HIDDEN TESTS\n{HIDDEN_SQUARE}\n### END HIDDEN TESTS",
            metadata=_meta("square-test", grade=True, points=1),
        ),
        new_code_cell(
            f"def hypotenuse(a, b):\n    ### BEGIN SOLUTION\n    {HYPOT_SOLUTION}\n"
            "    ### END SOLUTION",
            metadata=_meta("hypotenuse", solution=True),
        ),
        new_code_cell(
            "assert hypotenuse(3, 4) == 5\n"
            f"### BEGIN HIDDEN TESTS\n{HIDDEN_HYPOT}\n### END HIDDEN TESTS",
            metadata=_meta("hypotenuse-test", grade=True, points=2),
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


@pytest.fixture
def student_folder(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    src, dst = tmp_path / "instructor", tmp_path / "student"
    src.mkdir()
    nbformat.write(instructor_notebook(), src / "01_lesson.ipynb")
    nbformat.write(instructor_notebook(), src / "02_lesson.ipynb")
    (src / "notes.txt").write_text("instructor notes")
    written = make_student_version(src, dst)
    return src, dst, written


def test_folder_gives_one_clean_student_notebook_per_instructor_notebook(student_folder):
    src, dst, written = student_folder
    assert written == [dst / "01_lesson.ipynb", dst / "02_lesson.ipynb"]
    assert sorted(p.name for p in dst.iterdir()) == ["01_lesson.ipynb", "02_lesson.ipynb"]
    for path in written:
        text = path.read_text()
        for secret in (SQUARE_SOLUTION, HYPOT_SOLUTION, HIDDEN_SQUARE, HIDDEN_HYPOT):
            assert secret not in text
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
            assert marker not in text
        student = nbformat.read(path, as_version=4)
        assert check_student_notebook(student) == []
        for index in SOLUTION_CELLS:
            source = student.cells[index].source
            assert source.startswith("def ")  # the signature stays
            assert f"    {STUB_RAISE}" in source  # the body is the stub, indented
        for index in GRADE_CELLS:
            assert student.cells[index].source.startswith("assert ")  # the visible test stays
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
    # The instructor notebooks are untouched.
    assert SQUARE_SOLUTION in (src / "01_lesson.ipynb").read_text()


def test_student_notebook_raises_exactly_in_the_grade_cells(student_folder):
    _, dst, written = student_folder
    run = check_exercises_raise(written[0], timeout=30)
    assert run.ok, run.problems
    assert run.grade_cells == GRADE_CELLS
    assert run.error_names == {index: "NotImplementedError" for index in GRADE_CELLS}
    assert {error.role for error in run.errors} == {"grade"}


def test_instructor_notebook_runs_without_errors(tmp_path):
    run = check_exercises_raise(instructor_notebook(), timeout=30, cwd=tmp_path)
    assert run.errors == ()
    # On an instructor notebook the student rule fails, for the right reason.
    assert len(run.problems) == len(GRADE_CELLS)
    assert all("ran without error" in problem for problem in run.problems)


def test_execution_check_flags_a_test_that_passes_on_the_stub_and_a_stray_error(tmp_path):
    nb = instructor_notebook()
    nb.cells[3].source = "assert True  # does not call square"
    nb.cells.append(new_code_cell("1 / 0"))
    run = check_exercises_raise(make_student_notebook(nb), timeout=30, cwd=tmp_path)
    assert not run.ok
    assert run.error_names == {5: "NotImplementedError", 6: "ZeroDivisionError"}
    assert any("square-test" in p and "without error" in p for p in run.problems)
    assert any("cell 6" in p and "ZeroDivisionError" in p for p in run.problems)


def test_folder_with_execute_true_runs_the_check(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(instructor_notebook(), src / "lesson.ipynb")
    assert make_student_version(src, tmp_path / "dst", execute=True, timeout=30) == [
        tmp_path / "dst" / "lesson.ipynb"
    ]


def test_make_student_notebook_leaves_its_input_unchanged():
    nb = instructor_notebook()
    before = nbformat.writes(nb)
    make_student_notebook(nb)
    assert nbformat.writes(nb) == before


def test_static_check_reports_what_an_instructor_notebook_still_holds():
    problems = check_student_notebook(instructor_notebook())
    text = "\n".join(problems)
    assert "'square'" in text and "BEGIN SOLUTION" in text
    assert "'square-test'" in text and "BEGIN HIDDEN TESTS" in text
    assert "cell 1 still has 1 output(s)" in text
    assert "lacks 'raise NotImplementedError()'" in text


def test_real_nbgrader_generate_assignment_agrees(tmp_path, student_folder, monkeypatch):
    # nbgrader's gradebook runs the `alembic` console script by name, found on PATH; put this
    # interpreter's scripts folder first so the test also works in a venv that is not activated.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "course"
    (root / "source" / "ps1").mkdir(parents=True)
    nbformat.write(instructor_notebook(), root / "source" / "ps1" / "lesson.ipynb")
    config = Config()
    config.CourseDirectory.root = str(root)
    result = NbGraderAPI(config=config).generate_assignment("ps1")
    assert result["success"], result.get("error")

    release = nbformat.read(root / "release" / "ps1" / "lesson.ipynb", as_version=4)
    text = nbformat.writes(release)
    for secret in (SQUARE_SOLUTION, HYPOT_SOLUTION, HIDDEN_SQUARE, HIDDEN_HYPOT):
        assert secret not in text
    # nbgrader's full pipeline and ours give the student the same cell sources.
    ours = nbformat.read(student_folder[2][0], as_version=4)
    assert [c.source for c in release.cells] == [c.source for c in ours.cells]


# Bad input: each error names what is wrong and where.


def test_notebook_without_nbgrader_metadata_is_released_and_strict_refuses_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    plain = new_notebook(cells=[new_code_cell("x = 1", execution_count=1)])
    nbformat.write(plain, src / "plain.ipynb")
    # nbgrader releases such a notebook with its outputs cleared; so does the tool.
    (written,) = make_student_version(src, tmp_path / "dst")
    assert nbformat.read(written, as_version=4).cells[0].execution_count is None
    with pytest.raises(ValueError, match=r"plain\.ipynb.*nbgrader\.solution.*nbgrader\.grade"):
        make_student_version(src, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_missing_src_dir_is_refused(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=rf"src_dir .*'{missing}'"):
        make_student_version(missing, tmp_path / "dst")


def test_src_dir_without_notebooks_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no notebooks here")
    with pytest.raises(ValueError, match=rf"src_dir '{tmp_path}' contains no \*\.ipynb"):
        make_student_version(tmp_path, tmp_path / "dst")


def test_dst_dir_equal_to_src_dir_is_refused(tmp_path):
    nbformat.write(instructor_notebook(), tmp_path / "lesson.ipynb")
    with pytest.raises(ValueError, match="dst_dir must differ from src_dir"):
        make_student_version(tmp_path, tmp_path / "sub" / "..")
    assert SQUARE_SOLUTION in (tmp_path / "lesson.ipynb").read_text()


def test_solution_cell_without_begin_solution_becomes_the_stub_as_nbgrader_does():
    nb = instructor_notebook()
    nb.cells[4].source = f"def hypotenuse(a, b):\n    {HYPOT_SOLUTION}"
    student = make_student_notebook(nb, name="lesson.ipynb")
    assert student.cells[4].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    (problem,) = check_lesson_markup(nb)
    assert "cell 4 (solution cell 'hypotenuse')" in problem and "BEGIN SOLUTION" in problem


def test_unclosed_hidden_tests_are_refused():
    nb = instructor_notebook()
    nb.cells[5].source = "assert hypotenuse(3, 4) == 5\n### BEGIN HIDDEN TESTS\nassert True"
    with pytest.raises(ValueError, match=r"cell 5 \(grade cell 'hypotenuse-test'\).*No end hidden"):
        make_student_notebook(nb)


def test_solution_region_outside_a_solution_cell_is_refused():
    nb = instructor_notebook()
    nb.cells[1].source = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    with pytest.raises(ValueError, match=r"cell 1: .*non-solution cell"):
        make_student_notebook(nb)


def test_grade_cell_without_hidden_test_is_named_by_the_lesson_check():
    nb = instructor_notebook()
    assert check_lesson_markup(nb) == []
    nb.cells[3].source = "assert square(3) == 9"
    (problem,) = check_lesson_markup(nb)
    assert "'square-test'" in problem and "no hidden test" in problem


def test_exercise_run_skips_untagged_cells_and_names_a_missing_setup(tmp_path):
    nb = instructor_notebook()
    # An experiment cell that the exercises do not need, and one that they do.
    nb.cells.insert(2, new_code_cell("import time\ntime.sleep(30)"))
    nb.cells.insert(3, new_code_cell("OFFSET = 0"))
    nb.cells[7].source = "assert OFFSET + hypotenuse(3, 4) == 5"
    student = make_student_notebook(nb)
    run = check_exercises_raise(student, timeout=20, cwd=tmp_path, cells="exercises")
    assert run.executed == (1, 4, 5, 6, 7)
    assert any("cell 7" in p and "NameError" in p and "exercise-setup" in p for p in run.problems)
    student.cells[3].metadata["tags"] = ["exercise-setup"]
    run = check_exercises_raise(student, timeout=20, cwd=tmp_path, cells="exercises")
    assert run.ok, run.problems
    assert run.executed == (1, 3, 4, 5, 6, 7)
    assert run.error_names == {5: "NotImplementedError", 7: "NotImplementedError"}


def test_unknown_cell_selection_is_refused():
    with pytest.raises(ValueError, match=r"cells must be one of .*'exercises'\), got 'some'"):
        check_exercises_raise(instructor_notebook(), cells="some")


def test_invalid_nbgrader_metadata_is_refused():
    nb = instructor_notebook()
    del nb.cells[3].metadata["nbgrader"]["points"]
    with pytest.raises(ValueError, match=r"invalid nbgrader cell metadata.*'square-test'"):
        make_student_notebook(nb, name="lesson.ipynb")
