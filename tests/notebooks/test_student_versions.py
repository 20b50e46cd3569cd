"""The student version of every lesson: no solution or hidden test left, and when it runs, it
fails in exactly its exercise cells (each grade cell raises NotImplementedError)."""

from pathlib import Path

import nbformat
import pytest

from effdl.course.student import check_exercises_raise, make_student_version

COURSE = Path(__file__).resolve().parents[2] / "course"
LESSONS = sorted(COURSE.glob("*.ipynb"))


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    make_student_version(COURSE, out)
    return out


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_student_version_has_no_solutions(lesson, student_dir):
    instructor = nbformat.read(lesson, as_version=4)
    student = nbformat.read(student_dir / lesson.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    solutions = [c for c in instructor.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(solutions) >= 2, "each lesson has at least two graded exercises"
    for cell in solutions:
        body = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
        for line in filter(None, (line.strip() for line in body.splitlines())):
            assert line not in text, f"solution line left in the student version: {line}"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_student_version_fails_exactly_in_its_exercises(lesson, student_dir):
    run = check_exercises_raise(student_dir / lesson.name, timeout=300, cwd=COURSE)
    assert run.ok, run.problems
    instructor = nbformat.read(lesson, as_version=4)
    graded = [
        i for i, c in enumerate(instructor.cells) if c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert sorted(run.error_names) == graded
    assert set(run.error_names.values()) == {"NotImplementedError"}
