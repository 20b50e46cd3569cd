"""The student version of every lesson: no solution or hidden test left, and when its exercises
run, it fails in exactly its exercise cells (each grade cell raises NotImplementedError).

The run executes only the exercise cells (`effdl.course.student.exercise_cells`: the first code
cell, cells tagged "exercise-setup", nbgrader cells); nbval already runs every cell once."""

from pathlib import Path

import nbformat
import pytest

from effdl.course.student import check_exercises_raise, check_lesson_markup, make_student_version

COURSE = Path(__file__).resolve().parents[2] / "course"
LESSONS = sorted(COURSE.glob("*.ipynb"))


def _solution_region(source: str) -> str:
    return source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]


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
    # A solution line that also appears outside every solution region (a lone ")") proves
    # nothing; every other one must be gone.
    regions = [_solution_region(cell.source) for cell in solutions]
    outside = "\n".join(
        c.source.replace(_solution_region(c.source), "") if c in solutions else c.source
        for c in instructor.cells
    )
    outside_lines = {line.strip() for line in outside.splitlines()}
    student_lines = {line.strip() for line in text.splitlines()}
    for body in regions:
        for line in filter(None, (line.strip() for line in body.splitlines())):
            if line not in outside_lines:
                assert line not in student_lines, f"solution line left for students: {line}"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_student_version_fails_exactly_in_its_exercises(lesson, student_dir):
    run = check_exercises_raise(
        student_dir / lesson.name, timeout=300, cwd=COURSE, cells="exercises"
    )
    assert run.ok, run.problems
    instructor = nbformat.read(lesson, as_version=4)
    graded = [
        i for i, c in enumerate(instructor.cells) if c.metadata.get("nbgrader", {}).get("grade")
    ]
    # Every test cell fails; so may a solution cell whose top-level answer became the stub
    # (an experiment's number), and then with NotImplementedError too.
    assert set(graded) <= set(run.error_names)
    solutions = {
        i for i, c in enumerate(instructor.cells) if c.metadata.get("nbgrader", {}).get("solution")
    }
    assert set(run.error_names) - set(graded) <= solutions
    assert set(run.error_names.values()) == {"NotImplementedError"}


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_follows_the_kits_markup_rules(lesson):
    # Markers around every code answer and a hidden test in every test cell (nbgrader needs
    # neither; the kit's lessons do).
    assert check_lesson_markup(nbformat.read(lesson, as_version=4)) == []
