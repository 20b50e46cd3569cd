"""The student version of an instructor notebook, made by nbgrader's own preprocessors.

`make_student_notebook` applies the preprocessors of nbgrader's `generate_assignment`, in its
order and with its defaults, except the one that writes to the gradebook (`SaveCells`); so a
notebook comes out as `nbgrader generate_assignment` releases it, checksums and locked cells
included, and every markup nbgrader accepts is accepted here. This module adds what nbgrader
lacks: a whole folder in one call, error messages that name the notebook and the cell, a static
check of the result, the kit's stricter rules for its own lessons (`check_lesson_markup`), and a
run that shows every exercise really raises (`check_exercises_raise`).

Which cells the exercise run executes (`cells="exercises"`): the first code cell (imports and
seeds), every cell whose metadata tags include "exercise-setup", and every nbgrader cell
(solution, grade, task or read-only cell). Lesson authors tag "exercise-setup" any other cell
that an exercise or its tests need (a helper defined in the text, a dataset loaded once), so
that the check does not have to run the lesson's experiments a second time; nbval runs those.
Start reading from `make_student_version`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbgrader.converters import GenerateAssignment
from nbgrader.nbgraderformat import (
    MetadataValidator,
    SchemaTooNewError,
    SchemaTooOldError,
    ValidationError,
)
from nbgrader.preprocessors import SaveCells
from nbgrader.utils import is_grade, is_locked, is_solution, is_task
from traitlets.config import Config

# nbgrader's default Python stub, stated here so that the checks below look for the same line.
SOLUTION_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
STUB_RAISE = "raise NotImplementedError()"
# nbgrader's delimiters; it matches them anywhere in a line, and the lessons write "### " first.
BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
BEGIN_MARK_SCHEME, END_MARK_SCHEME = "BEGIN MARK SCHEME", "END MARK SCHEME"
LEFTOVER_MARKERS = (
    BEGIN_SOLUTION,
    END_SOLUTION,
    BEGIN_HIDDEN_TESTS,
    END_HIDDEN_TESTS,
    BEGIN_MARK_SCHEME,
    END_MARK_SCHEME,
)
# A grade cell that calls the student's unfinished function fails with exactly this.
EXPECTED_ERROR = "NotImplementedError"
KERNEL_NAME = "python3"
# The cell tag that puts a non-exercise cell into the exercise run (see the module docstring).
SETUP_TAG = "exercise-setup"
CELL_SELECTIONS = ("all", "exercises")


def release_preprocessors() -> list[type]:
    """Return nbgrader's `generate_assignment` preprocessor classes, in order, less `SaveCells`.

    `SaveCells` only records the cells in the gradebook database; it leaves the notebook as it
    is, so the others alone give the released notebook.

    Source: nbgrader 0.9.6, `nbgrader.converters.GenerateAssignment.preprocessors`.
    """
    default = GenerateAssignment.class_traits()["preprocessors"].default()
    return [pp for pp in default if pp is not SaveCells]


def make_student_version(
    src_dir: str | Path,
    dst_dir: str | Path,
    *,
    execute: bool = False,
    timeout: int = 60,
    strict: bool = False,
    config: Config | None = None,
) -> list[Path]:
    """Return the paths of the student notebooks written to `dst_dir`, one per `src_dir/*.ipynb`.

    Each instructor notebook (non-recursive; other files are not copied) goes through
    `make_student_notebook` and must pass `check_student_notebook`; with `strict=True` it must
    also pass `check_lesson_markup` (the kit's rules for its own lessons), and with
    `execute=True` `check_exercises_raise`, run with `src_dir` as the working folder. Nothing is
    written unless every notebook passes, so a failed call leaves `dst_dir` as it was.

    Parameters
    ----------
    src_dir : folder of instructor notebooks in nbgrader markup.
    dst_dir : folder for the student versions; created if missing, same-named files replaced.
    execute : also run each student version in a kernel and check that its exercises raise.
    timeout : seconds allowed per cell when `execute` is true.
    strict : also apply `check_lesson_markup` (markers in every code solution, a hidden test
        in every autograded test cell).
    config : nbgrader configuration (a stub of another language, header cells...); nbgrader's
        defaults when None.

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
        instructor = nbformat.read(path, as_version=4)
        if strict:
            problems = check_lesson_markup(instructor)
            if problems:
                raise ValueError(
                    f"{path} breaks the lesson rules checked by strict=True: " + "; ".join(problems)
                )
        student = make_student_notebook(instructor, name=str(path), config=config, cwd=src)
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


def make_student_notebook(
    nb: NotebookNode,
    name: str = "notebook",
    *,
    config: Config | None = None,
    cwd: str | Path | None = None,
) -> NotebookNode:
    """Return the student version of an instructor notebook; `nb` itself is left unchanged.

    The result is what `nbgrader generate_assignment` releases: solution regions (or, in a
    solution cell without `### BEGIN SOLUTION` lines, the whole cell) become the code stub or
    "YOUR ANSWER HERE", hidden tests and mark schemes go, outputs are cleared, solution, grade
    and read-only cells are locked, and nbgrader's checksums are written into the metadata.
    Whatever nbgrader accepts is accepted; what it refuses is refused with a message that names
    the notebook and the cell.

    Parameters
    ----------
    nb : an instructor notebook (nbformat 4) with nbgrader cell metadata, schema version 3;
        a notebook without any is released with its outputs cleared, as nbgrader does.
    name : how error messages name the notebook, usually its file path.
    config : nbgrader configuration; nbgrader's defaults when None.
    cwd : folder that relative paths in `config` (header, footer) and autotest kernels use.

    Raises
    ------
    ValueError : the nbgrader metadata is invalid, or nbgrader refuses the markup (an unclosed
        or nested region, a region in a cell of the wrong kind).

    Source: nbgrader documentation, "Developing assignments"; `nbgrader.preprocessors`.
    """
    student = copy.deepcopy(nb)
    _validate_metadata(student, name)
    config = Config() if config is None else config
    resources: dict[str, Any] = {"metadata": {"path": str(Path.cwd() if cwd is None else cwd)}}
    for preprocessor_class in release_preprocessors():
        preprocessor = preprocessor_class(config=config)
        # nbgrader edits cells in place before it refuses one: locate the cell on a copy.
        before = copy.deepcopy(student)
        try:
            student, resources = preprocessor.preprocess(student, resources)
        except (RuntimeError, ValueError, ValidationError) as error:
            where = _locate(preprocessor, before, resources)
            raise ValueError(
                f"{name}: {where}nbgrader refuses it ({preprocessor_class.__name__}): "
                f"{str(error).strip()}"
            ) from error
    return student


def check_lesson_markup(nb: NotebookNode) -> list[str]:
    """Return how an instructor notebook breaks the kit's lesson rules, one sentence each.

    nbgrader accepts more than the kit's lessons may use. A lesson must have exercise cells;
    each code solution cell keeps its signature by wrapping the answer in
    `### BEGIN SOLUTION` / `### END SOLUTION`; and each autograded test cell (a code grade cell
    that is not itself a solution) holds a `### BEGIN HIDDEN TESTS` region, so that a student
    cannot pass by fitting the visible asserts. Each sentence names the cell's grade_id.

    Source: the kit's exercise rules (EXERCISES.md); nbgrader documentation, "Autograder tests".
    """
    problems = []
    if not any(is_solution(cell) or is_grade(cell) for cell in nb.cells):
        problems.append(
            "no exercise cells: set 'nbgrader.solution' or 'nbgrader.grade' on them "
            "(Jupyter's 'Create Assignment' toolbar writes it)"
        )
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = _describe(cell, index)
        if is_solution(cell) and not is_grade(cell) and BEGIN_SOLUTION not in cell.source:
            problems.append(
                f"{where} has no '### {BEGIN_SOLUTION}' / '### {END_SOLUTION}' lines: "
                "wrap the answer in them so the code around it stays"
            )
        if is_grade(cell) and not is_solution(cell) and BEGIN_HIDDEN_TESTS not in cell.source:
            problems.append(
                f"{where} has no hidden test: add a '### {BEGIN_HIDDEN_TESTS}' / "
                f"'### {END_HIDDEN_TESTS}' region"
            )
    return problems


def check_student_notebook(nb: NotebookNode) -> list[str]:
    """Return the problems of a student notebook, one sentence each; empty when it is clean.

    Clean means: no solution, hidden-test or mark-scheme delimiter left in any cell, every
    code solution cell contains `raise NotImplementedError()` (nbgrader's Python stub), and no
    code cell keeps outputs or an execution count.

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


@dataclass(frozen=True)
class CellError:
    """One executed code cell that raised: where it is, its nbgrader role, the exception name.

    `role` is "solution", "grade", "solution+grade" (a manually graded answer), "task",
    "read-only" or "other".
    """

    index: int
    role: str
    grade_id: str | None
    ename: str


@dataclass(frozen=True)
class ExerciseRun:
    """The outcome of executing a notebook's cells with errors allowed.

    `errors` lists every cell that raised, `grade_cells` the indices of the code grade cells,
    `executed` the indices of the code cells that ran, and `problems` every breach of the rule
    in `check_exercises_raise` (empty when it holds). Indices are those of the whole notebook.
    """

    errors: tuple[CellError, ...]
    grade_cells: tuple[int, ...]
    problems: tuple[str, ...]
    executed: tuple[int, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every exercise raises as a student version should."""
        return not self.problems

    @property
    def error_names(self) -> dict[int, str]:
        """The exception name of each cell that raised, by cell index."""
        return {error.index: error.ename for error in self.errors}


def exercise_cells(nb: NotebookNode) -> list[int]:
    """Return the indices of the code cells that the exercise run executes, in order.

    They are the first code cell (imports and seeds), every code cell tagged "exercise-setup"
    in its metadata, and every code cell with nbgrader metadata (solution, grade, task or
    read-only).

    Source: the kit's exercise rules (EXERCISES.md); nbgrader documentation, "Developing
    assignments" (cell types).
    """
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    chosen = set(code[:1])
    for index in code:
        cell = nb.cells[index]
        if SETUP_TAG in cell.metadata.get("tags", []) or "nbgrader" in cell.metadata:
            chosen.add(index)
    return sorted(chosen)


def check_exercises_raise(
    student_nb: NotebookNode | str | Path,
    timeout: int = 60,
    cwd: str | Path | None = None,
    cells: Literal["all", "exercises"] = "all",
) -> ExerciseRun:
    """Return which cells raised, and how, when a notebook's cells are executed in order.

    The cells run in a fresh `python3` kernel with errors allowed, so every cell runs and
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
    cells : "all" runs every cell; "exercises" only those of `exercise_cells` (the first code
        cell, cells tagged "exercise-setup", nbgrader cells), which skips the lesson's
        experiments. A cell an exercise needs but not tagged shows up as a `NameError` problem.

    Raises
    ------
    ValueError : `cells` is not one of "all", "exercises".

    Source: nbclient documentation, "Executing notebooks" (`allow_errors`); nbgrader
    documentation, "Developing assignments".
    """
    if cells not in CELL_SELECTIONS:
        raise ValueError(f"cells must be one of {CELL_SELECTIONS}, got {cells!r}")
    if isinstance(student_nb, str | Path):
        path = Path(student_nb)
        nb = nbformat.read(path, as_version=4)
        workdir = path.parent if cwd is None else Path(cwd)
    else:
        nb = copy.deepcopy(student_nb)
        workdir = Path.cwd() if cwd is None else Path(cwd)

    if cells == "all":
        chosen = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    else:
        chosen = exercise_cells(nb)
    # Run a notebook of the chosen cells only; its cell k is cell chosen[k] of `nb`.
    subset = copy.deepcopy(nb)
    subset.cells = [nb.cells[index] for index in chosen]
    client = NotebookClient(
        subset,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()

    errors: list[CellError] = []
    grade_cells: list[int] = []
    problems: list[str] = []
    for index, cell in zip(chosen, subset.cells, strict=True):
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
        if role not in ("solution", "grade", "solution+grade"):
            hint = f" (tag the cell it needs '{SETUP_TAG}'?)" if ename == "NameError" else ""
            problems.append(f"{where} raised {ename}: only exercise cells may raise{hint}")
        elif ename != EXPECTED_ERROR:
            hint = ""
            if ename == "NameError" and cells == "exercises":
                hint = f" (does it need a cell that is not tagged '{SETUP_TAG}'?)"
            problems.append(f"{where} raised {ename}, expected {EXPECTED_ERROR}{hint}")
    return ExerciseRun(tuple(errors), tuple(grade_cells), tuple(problems), tuple(chosen))


def _validate_metadata(nb: NotebookNode, name: str) -> None:
    """Raise ValueError when nbgrader's own validator rejects the cell metadata."""
    try:
        MetadataValidator().validate_nb(nb)
    except (ValidationError, SchemaTooOldError, SchemaTooNewError) as error:
        message = getattr(error, "message", str(error))
        raise ValueError(f"{name}: invalid nbgrader cell metadata: {message}") from error


def _locate(preprocessor: Any, nb: NotebookNode, resources: dict[str, Any]) -> str:
    """Name the first cell that `preprocessor` refuses on its own, as "cell i (...): ", or ""."""
    for index, cell in enumerate(nb.cells):
        try:
            preprocessor.preprocess_cell(copy.deepcopy(cell), dict(resources), index)
        except (RuntimeError, ValueError, KeyError):
            return f"{_describe(cell, index)}: "
    return ""


def _role(cell: NotebookNode) -> str:
    """The cell's nbgrader role: "solution", "grade", "solution+grade", "task", "read-only",
    or "other"."""
    flags = (("solution", is_solution(cell)), ("grade", is_grade(cell)))
    role = "+".join(role for role, flag in flags if flag)
    if role:
        return role
    if is_task(cell):
        return "task"
    if is_locked(cell):
        return "read-only"
    return "other"


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
