import json
import subprocess
import sys

from effdl.cli import main


def test_reproduce_only_prints_the_table_and_writes_reports(tmp_path, capsys):
    out_json, out_md = tmp_path / "ledger.json", tmp_path / "ledger.md"
    status = main(
        ["reproduce", "--only", "fc-vs-conv", "--json", str(out_json), "--markdown", str(out_md)]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "claim" in printed and "published" in printed and "measured here" in printed
    assert "fc-vs-conv" in printed and "reproduced" in printed
    report = json.loads(out_json.read_text())
    assert [c["id"] for c in report["claims"]] == ["fc-vs-conv"]
    assert "fc-vs-conv" in out_md.read_text()


def test_unknown_claim_id_is_a_usage_error(capsys):
    assert main(["reproduce", "--only", "no-such-claim"]) == 2
    assert "unknown claim ids ['no-such-claim']" in capsys.readouterr().err


def test_console_script_is_installed():
    completed = subprocess.run(
        [sys.executable, "-m", "effdl.cli", "info"], capture_output=True, text=True, check=True
    )
    info = json.loads(completed.stdout)
    assert "mnist1d-baselines" in info["claims"] and info["effdl"]
