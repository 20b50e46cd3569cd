import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    # The `effdl` script that pip installs beside this interpreter, not `python -m effdl.cli`.
    script = shutil.which("effdl", path=str(Path(sys.executable).parent))
    assert script is not None, f"no effdl script in {Path(sys.executable).parent}"
    completed = subprocess.run([script, "info"], capture_output=True, text=True, check=True)
    info = json.loads(completed.stdout)
    assert "mnist1d-baselines" in info["claims"] and info["effdl"]


def test_course_student_writes_every_lesson(tmp_path, capsys):
    course = Path(__file__).resolve().parents[1] / "course"
    assert main(["course", "student", str(course), str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in written) == sorted(p.name for p in course.glob("*.ipynb"))


def test_course_student_strict_refuses_a_notebook_without_nbgrader_metadata(tmp_path, capsys):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), src / "plain.ipynb")
    # nbgrader releases such a notebook as it is; the kit's lesson rules refuse it.
    assert main(["course", "student", str(src), str(tmp_path / "dst")]) == 0
    capsys.readouterr()
    assert main(["course", "student", "--strict", str(src), str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert "plain.ipynb" in err and "no exercise cells" in err and "nbgrader.solution" in err


def test_course_student_without_nbgrader_names_the_extra(tmp_path, capsys, monkeypatch):
    # A None entry in sys.modules makes an import fail as if the module were not installed.
    for name in [m for m in sys.modules if m.split(".")[0] == "nbgrader"] + ["nbgrader"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "effdl.course.student", raising=False)
    assert main(["course", "student", str(tmp_path), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert "'course' extra" in err and "pip install 'effdl[course]'" in err and "nbgrader" in err


def test_course_init_lays_out_a_course_directory(tmp_path, capsys):
    course = Path(__file__).resolve().parents[1] / "course"
    assert main(["course", "init", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out.split()
    lessons = sorted(course.glob("*.ipynb"))
    expected = [tmp_path / "c" / "source" / p.stem / p.name for p in lessons]
    assert printed == [str(tmp_path / "c" / "nbgrader_config.py"), *map(str, expected)]
    for path, src in zip(expected, lessons, strict=True):
        assert path.read_bytes() == src.read_bytes()


def test_course_init_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["course", "init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"directory must be a new or empty folder, got '{tmp_path}'" in err
    assert "notes.txt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
