"""The student version of an instructor notebook, made by nbgrader's own preprocessors.

nbgrader's `ClearSolutions`, `ClearHiddenTests` and `ClearOutput` do the rewriting; this module
adds what nbgrader lacks: a whole folder in one call, a static check of the result, and a run
that shows every exercise really raises. Start reading from `make_student_version`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbgrader.nbgraderformat import (
    MetadataValidator,
    SchemaTooNewError,
    SchemaTooOldError,
    ValidationError,
)
from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions
from nbgrader.utils import is_grade, is_solution
from traitlets.config import Config

# nbgrader's default Python stub, stated here so that the checks below look for the same line.
SOLUTION_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
STUB_RAISE = "raise NotImplementedError()"
# nbgrader's delimiters; it matches them anywhere in a line, and the lessons write "### " first.
BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
LEFTOVER_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS)
# A grade cell that calls the student's unfinished function fails with exactly this.
EXPECTED_ERROR = "NotImplementedError"
KERNEL_NAME = "python3"


@dataclass(frozen=True)
class CellError:
    """One executed code cell that raised: where it is, its nbgrader role, the exception name.

    `role` is "solution", "grade", "solution+grade" (a manually graded answer) or "other".
    """

    index: int
    role: str
    grade_id: str | None
    ename: str


@dataclass(frozen=True)
class ExerciseRun:
    """The outcome of executing a notebook cell by cell with errors allowed.

    `errors` lists every cell that raised, `grade_cells` the indices of the code grade cells,
    and `problems` every breach of the rule in `check_exercises_raise` (empty when it holds).
    """

    errors: tuple[CellError, ...]
    grade_cells: tuple[int, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every exercise raises as a student version should."""
        return not self.problems

    @property
    def error_names(self) -> dict[int, str]:
        """The exception name of each cell that raised, by cell index."""
        return {error.index: error.ename for error in self.errors}


def make_student_version(
    src_dir: str | Path,
    dst_dir: str | Path,
    *,
    execute: bool = False,
    timeout: int = 60,
) -> list[Path]:
    """Return the paths of the student notebooks written to `dst_dir`, one per `src_dir/*.ipynb`.

    Each instructor notebook (non-recursive; other files are not copied) goes through
    `make_student_notebook` and must pass `check_student_notebook`; with `execute=True` it must
    also pass `check_exercises_raise`, run with `src_dir` as the working folder. Nothing is
    written unless every notebook passes, so a failed call leaves `dst_dir` as it was.

    Parameters
    ----------
    src_dir : folder of instructor notebooks in nbgrader markup.
    dst_dir : folder for the student versions; created if missing, same-named files replaced.
    execute : also run each student version in a kernel and check that its exercises raise.
    timeout : seconds allowed per cell when `execute` is true.

    Raises
    ------
    ValueError : a missing or empty `src_dir`, `dst_dir` equal to `src_dir`, a notebook that
        nbgrader cannot convert, or a student version that fails a check.

    Source: nbgrader documentation, "Developing assignments" (the `generate_assignment` step).
    """
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise ValueError(
            f"src_dir must be an existing folder of instructor notebooks, got '{src_dir}'"
        )
    sources = sorted(path for path in src.glob("*.ipynb") if path.is_file())
    if not sources:
        raise ValueError(f"src_dir '{src_dir}' contains no *.ipynb notebooks")
    if dst.resolve() == src.resolve():
        raise ValueError(
            f"dst_dir must differ from src_dir, got '{dst_dir}' for both: the student versions "
            "would overwrite the instructor notebooks"
        )
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"dst_dir must be a folder, got the file '{dst_dir}'")

    students: dict[Path, NotebookNode] = {}
    for path in sources:
        student = make_student_notebook(nbformat.read(path, as_version=4), name=str(path))
        problems = check_student_notebook(student)
        if problems:
            raise ValueError(f"student version of {path} fails its check: " + "; ".join(problems))
        if execute:
            run = check_exercises_raise(student, timeout=timeout, cwd=src)
            if not run.ok:
                raise ValueError(
                    f"student version of {path} does not raise as it should: "
                    + "; ".join(run.problems)
                )
        students[dst / path.name] = student

    dst.mkdir(parents=True, exist_ok=True)
    for target, student in students.items():
        nbformat.write(student, target)
    return list(students)


def make_student_notebook(nb: NotebookNode, name: str = "notebook") -> NotebookNode:
    """Return the student version of an instructor notebook; `nb` itself is left unchanged.

    Solutions between `### BEGIN SOLUTION` / `### END SOLUTION` become `SOLUTION_STUB` (nbgrader
    keeps the indentation, so a function body becomes `raise NotImplementedError()`), hidden
    tests between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS` go, and outputs are cleared.
    The work is done by nbgrader's `ClearSolutions`, `ClearHiddenTests` and `ClearOutput`; this
    function first checks the markup so that an error names the notebook and the cell.
    A markdown solution cell (a written answer) needs no delimiters: nbgrader replaces the whole
    cell by "YOUR ANSWER HERE". A code solution cell must have them, so that the function
    signature around the answer stays in the student version.

    Parameters
    ----------
    nb : an instructor notebook (nbformat 4) with nbgrader cell metadata, schema version 3.
    name : how error messages name the notebook, usually its file path.

    Raises
    ------
    ValueError : no cell has nbgrader metadata, the metadata is invalid, a code solution cell
        lacks `### BEGIN SOLUTION`, a region is unbalanced or sits in a cell of the wrong kind.

    Source: nbgrader documentation, "Developing assignments"; `nbgrader.preprocessors`.
    """
    student = copy.deepcopy(nb)
    _require_exercise_cells(student, name)
    _validate_metadata(student, name)
    _validate_markup(student, name)

    config = Config()
    config.ClearSolutions.code_stub = {"python": SOLUTION_STUB}
    preprocessors = (
        ClearSolutions(config=config),
        ClearHiddenTests(config=config),
        ClearOutput(config=config),
    )
    # ClearSolutions records the kernel language in `resources`; none of them needs more.
    resources: dict[str, Any] = {}
    try:
        for preprocessor in preprocessors:
            student, resources = preprocessor.preprocess(student, resources)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{name}: nbgrader could not make the student version: {error}") from error
    return student


def check_student_notebook(nb: NotebookNode) -> list[str]:
    """Return the problems of a student notebook, one sentence each; empty when it is clean.

    Clean means: no solution or hidden-test delimiter left in any cell, every code solution
    cell contains `raise NotImplementedError()`, and no code cell keeps outputs or an
    execution count.

    Source: nbgrader documentation, "Developing assignments" (what the release version holds).
    """
    problems = []
    for index, cell in enumerate(nb.cells):
        where = _describe(cell, index)
        for marker in LEFTOVER_MARKERS:
            if marker in cell.source:
                problems.append(f"{where} still contains '{marker}'")
        if cell.cell_type != "code":
            continue
        if is_solution(cell) and STUB_RAISE not in cell.source:
            problems.append(f"{where} lacks '{STUB_RAISE}'")
        if cell.get("outputs"):
            problems.append(f"{where} still has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"{where} still has execution count {cell.execution_count}")
    return problems


def check_exercises_raise(
    student_nb: NotebookNode | str | Path,
    timeout: int = 60,
    cwd: str | Path | None = None,
) -> ExerciseRun:
    """Return which cells raised, and how, when a notebook is executed top to bottom.

    The notebook runs in a fresh `python3` kernel with errors allowed, so every cell runs and
    each failing cell keeps its exception name (`ename`). The rule for a student version:

    - every cell that raises is a solution or grade cell (nbgrader metadata);
    - every code grade cell raises: its test must not pass before the exercise is solved;
    - every such error is `NotImplementedError`.

    A solution cell that only defines a function does not raise (its body is the stub); the
    grade cell that calls the function does. An exercise whose solution is top-level code
    raises in the solution cell and then `NameError` in its grade cell, which breaks the rule:
    write exercises as functions that the grade cell calls. On an instructor notebook the
    rule does not apply, but `errors` is empty when every exercise's tests pass.

    Parameters
    ----------
    student_nb : the notebook, or the path of a notebook file.
    timeout : seconds allowed per cell; a cell running longer stops the run with nbclient's
        `CellTimeoutError`.
    cwd : working folder of the kernel; by default the notebook file's folder, or the current
        folder when a notebook node is given.

    Source: nbclient documentation, "Executing notebooks" (`allow_errors`); nbgrader
    documentation, "Developing assignments".
    """
    if isinstance(student_nb, str | Path):
        path = Path(student_nb)
        nb = nbformat.read(path, as_version=4)
        workdir = path.parent if cwd is None else Path(cwd)
    else:
        nb = copy.deepcopy(student_nb)
        workdir = Path.cwd() if cwd is None else Path(cwd)

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()

    errors: list[CellError] = []
    grade_cells: list[int] = []
    problems: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        role = _role(cell)
        where = _describe(cell, index)
        ename = _error_name(cell)
        if is_grade(cell):
            grade_cells.append(index)
            if ename is None:
                problems.append(f"{where} ran without error: its test passes before it is solved")
        if ename is None:
            continue
        errors.append(CellError(index, role, _grade_id(cell), ename))
        if role == "other":
            problems.append(f"{where} raised {ename}: only exercise cells may raise")
        elif ename != EXPECTED_ERROR:
            problems.append(f"{where} raised {ename}, expected {EXPECTED_ERROR}")
    return ExerciseRun(tuple(errors), tuple(grade_cells), tuple(problems))


def _require_exercise_cells(nb: NotebookNode, name: str) -> None:
    """Raise ValueError when no cell is an nbgrader solution or grade cell."""
    if not any(is_solution(cell) or is_grade(cell) for cell in nb.cells):
        raise ValueError(
            f"{name} has no exercise cells: nbgrader cell metadata is required "
            "('nbgrader.solution' or 'nbgrader.grade' set to true on the exercise cells; "
            "Jupyter's 'Create Assignment' toolbar writes it)"
        )


def _validate_metadata(nb: NotebookNode, name: str) -> None:
    """Raise ValueError when nbgrader's own validator rejects the cell metadata."""
    try:
        MetadataValidator().validate_nb(nb)
    except (ValidationError, SchemaTooOldError, SchemaTooNewError) as error:
        message = getattr(error, "message", str(error))
        raise ValueError(f"{name}: invalid nbgrader cell metadata: {message}") from error


def _validate_markup(nb: NotebookNode, name: str) -> None:
    """Raise ValueError, naming the cell, for solution or hidden-test markup nbgrader rejects."""
    for index, cell in enumerate(nb.cells):
        where = _describe(cell, index)
        begins, ends = cell.source.count(BEGIN_SOLUTION), cell.source.count(END_SOLUTION)
        if cell.cell_type == "code" and is_solution(cell) and begins == 0:
            raise ValueError(
                f"{name}: solution cell '{_grade_id(cell)}' has no '### {BEGIN_SOLUTION}' line; "
                f"wrap the answer in '### {BEGIN_SOLUTION}' / '### {END_SOLUTION}' so that the "
                "code around it stays in the student version"
            )
        if begins != ends:
            raise ValueError(
                f"{name}: {where} has {begins} '### {BEGIN_SOLUTION}' and {ends} "
                f"'### {END_SOLUTION}' lines; they must pair up"
            )
        if begins and not is_solution(cell):
            raise ValueError(
                f"{name}: {where} holds a solution region but is not a solution cell "
                "(set 'nbgrader.solution' to true)"
            )
        begins, ends = cell.source.count(BEGIN_HIDDEN_TESTS), cell.source.count(END_HIDDEN_TESTS)
        if begins != ends:
            raise ValueError(
                f"{name}: {where} has {begins} '### {BEGIN_HIDDEN_TESTS}' and {ends} "
                f"'### {END_HIDDEN_TESTS}' lines; they must pair up"
            )
        if begins and not is_grade(cell):
            raise ValueError(
                f"{name}: {where} holds hidden tests but is not a grade cell "
                "(set 'nbgrader.grade' to true)"
            )


def _role(cell: NotebookNode) -> str:
    """The cell's nbgrader role: "solution", "grade", "solution+grade" or "other"."""
    flags = (("solution", is_solution(cell)), ("grade", is_grade(cell)))
    return "+".join(role for role, flag in flags if flag) or "other"


def _grade_id(cell: NotebookNode) -> str | None:
    """The cell's nbgrader grade_id, or None for a cell without one."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _describe(cell: NotebookNode, index: int) -> str:
    """How a message names a cell: its index, and its role and grade_id when it has them."""
    role = _role(cell)
    if role == "other":
        return f"cell {index}"
    return f"cell {index} ({role} cell '{_grade_id(cell)}')"


def _error_name(cell: NotebookNode) -> str | None:
    """The exception name of an executed code cell's error output, or None if it ran cleanly."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return output.ename
    return None
