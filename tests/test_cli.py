import json
import subprocess
import sys

from effdl.cli import main


def test_reproduce_only_prints_the_table_and_writes_reports(tmp_path, capsys):
    out_json, out_md = tmp_path / "ledger.json", tmp_path / "ledger.md"
    status = main(
        ["reproduce", "--only", "mobilenet-v2", "--json", str(out_json), "--markdown", str(out_md)]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "claim" in printed and "published" in printed and "measured here" in printed
    assert "mobilenet-v2" in printed and "reproduced" in printed
    report = json.loads(out_json.read_text())
    assert [c["id"] for c in report["claims"]] == ["mobilenet-v2"]
    assert "mobilenet-v2" in out_md.read_text()


def test_unknown_claim_id_is_a_usage_error(capsys):
    assert main(["reproduce", "--only", "no-such-claim"]) == 2
    assert "unknown claim ids ['no-such-claim']" in capsys.readouterr().err


def test_console_script_is_installed():
    completed = subprocess.run(
        [sys.executable, "-m", "effdl.cli", "info"], capture_output=True, text=True, check=True
    )
    info = json.loads(completed.stdout)
    assert "mnist1d-baselines" in info["claims"] and info["effdl"]


def test_course_student_writes_every_lesson(tmp_path, capsys):
    from pathlib import Path

    course = Path(__file__).resolve().parents[1] / "course"
    assert main(["course", "student", str(course), str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in written) == sorted(p.name for p in course.glob("*.ipynb"))


def test_course_student_refuses_a_notebook_without_nbgrader_metadata(tmp_path, capsys):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), src / "plain.ipynb")
    assert main(["course", "student", str(src), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert "plain.ipynb" in err and "nbgrader" in err
