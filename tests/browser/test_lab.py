"""Lesson 00 in a real browser: JupyterLab on loopback, headless Debian Chromium driven by
Playwright, Run All Cells, then no error output, the explorer renders and moving it redraws.

Run it with `pytest -m browser`. It needs Debian's `chromium` at /usr/bin/chromium (Playwright's
own browser downloads are never used) and is skipped, with the reason, where that or the
`playwright` package is missing. The lesson is copied into a temporary folder first, so running
it leaves the repository's notebook as it was. Set EFFDL_BROWSER_ADD_WIDGET=1 to append the
explorer cells to that copy when the lesson lacks them (to try the test on a lesson that has no
widget yet); without it such a lesson fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
LESSON = REPO / "course" / "00_efficiency_and_pareto.ipynb"
CHROMIUM = Path(os.environ.get("EFFDL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Lesson 00 trains four models: about a minute on two idle cores, several on a busy machine.
RUN_ALL_TIMEOUT_S = 900
SERVER_START_TIMEOUT_S = 120

#: The explorer cells a lesson adds: the interactive one and its static default figure.
WIDGET_CELLS = (
    "from effdl.widgets import pareto_explorer, pareto_figure\n\n"
    'pareto_explorer(rows, metrics=("accuracy", "macs"))',
    'pareto_figure(rows, metrics=("accuracy", "macs"))',
)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b", re.M)


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.skip(f"playwright is not installed ({error}); pip install -e '.[dev]'")
    return sync_playwright


@pytest.fixture
def lesson_dir(tmp_path: Path) -> Path:
    """A copy of lesson 00 (with its explorer cells) in a folder of its own."""
    course = tmp_path / "course"
    course.mkdir()
    notebook = json.loads(LESSON.read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    if not any("effdl.widgets" in source for source in sources):
        if os.environ.get("EFFDL_BROWSER_ADD_WIDGET") != "1":
            pytest.fail(f"lesson 00 has no widget: no cell of {LESSON.name} uses effdl.widgets")
        notebook["cells"] += [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"explorer-{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(WIDGET_CELLS)
        ]
    (course / LESSON.name).write_text(json.dumps(notebook, indent=1))
    return course


@pytest.fixture
def lab(lesson_dir: Path, tmp_path: Path):
    """A JupyterLab server on 127.0.0.1 with a random token, rooted at `lesson_dir`; yields its
    base URL and token, and kills the server and its kernels at the end."""
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (the course extra)")
    token = secrets.token_hex(16)
    port = _free_port()
    home = tmp_path / "home"
    settings = home / "lab-settings"
    # The full notebook stays in the page (no virtual scrolling) so every cell can be read, and
    # JupyterLab fetches no news or updates: the test must not need the network.
    _write_settings(
        settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings",
        {"windowingMode": "none"},
    )
    _write_settings(
        settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
        {"checkForUpdates": False, "fetchNews": "false"},
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "MPLBACKEND", "PYTEST"))
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        OMP_NUM_THREADS="1",
    )
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--ServerApp.token={token}",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={lesson_dir}",
            "--LabApp.news_url=",
            # CI containers run as root; the server only listens on loopback.
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        cwd=lesson_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: the server and the kernels it starts
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(server, f"{base}/api/status?token={token}", tmp_path / "jupyter.log")
        yield base, token
    finally:
        _stop(server)
        log.close()


def test_lesson_00_runs_and_its_explorer_redraws(lab, lesson_dir: Path, tmp_path: Path):
    base, token = lab
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)")
    sync_playwright = _playwright()
    started = time.monotonic()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
            )
        except Exception as error:  # a browser that cannot start here is one we cannot have
            pytest.skip(f"{CHROMIUM} does not start: {str(error).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            _run_lesson(
                page, f"{base}/lab/tree/{LESSON.name}?token={token}", lesson_dir / LESSON.name
            )
        except BaseException:
            shot = tmp_path / "lab-failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the page at failure: {shot}")
            print(f"server log: {tmp_path / 'jupyter.log'}")
            raise
        finally:
            browser.close()
    print(f"lesson 00 ran in the browser in {time.monotonic() - started:.0f} s")


def _run_lesson(page, url: str, notebook: Path) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    _wait_for_kernel_idle(page, timeout_s=120)
    # JupyterLab renders a long notebook's cells a few at a time: count them in the file.
    code_cells = sum(
        cell["cell_type"] == "code" for cell in json.loads(notebook.read_text())["cells"]
    )
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-Notebook .jp-CodeCell').length === n",
        arg=code_cells,
        timeout=60_000,
    )

    # The stored outputs go first, so every output seen afterwards comes from this run.
    _menu(page, "Edit", "Clear Outputs of All Cells")
    _menu(page, "Run", "Run All Cells")
    _wait_for_all_cells(page, code_cells, timeout_s=RUN_ALL_TIMEOUT_S)

    stderr = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    ).all_inner_texts()
    errors = [text for text in stderr if TRACEBACK.search(text)]
    assert not errors, "cells show errors:\n" + "\n---\n".join(errors)

    dropdown = page.locator(".jupyter-widgets.widget-dropdown select").first
    dropdown.wait_for(timeout=30_000)
    output = page.locator(".jupyter-widgets.widget-output").first
    before = output.inner_text()
    assert "on the front:" in before, f"the explorer shows no front: {before!r}"
    image = output.locator("img").first.get_attribute("src")
    options = dropdown.locator("option").all_inner_texts()
    other = next(option for option in options if option != dropdown.input_value())
    dropdown.select_option(other)
    page.wait_for_function(
        """([before]) => {
            const out = document.querySelector('.jupyter-widgets.widget-output');
            return out && out.innerText !== before;
        }""",
        arg=[before],
        timeout=60_000,
    )
    after = output.inner_text()
    assert f"{other} (min)" in after, after
    assert output.locator("img").first.get_attribute("src") != image


def _wait_for_kernel_idle(page, timeout_s: float) -> None:
    page.wait_for_selector(
        '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=timeout_s * 1000
    )


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
    page.locator(".lm-Menu-item:visible", has_text=re.compile(rf"^{item}")).first.click()


def _wait_for_all_cells(page, code_cells: int, timeout_s: float) -> None:
    """Wait until the code cells carry the execution numbers 1, 2, ... in order (a fresh
    kernel ran each once); fail early if the kernel goes idle with cells left unrun, which is
    how Run All stops at an error."""
    deadline = time.monotonic() + timeout_s
    idle_with_gaps = 0
    while time.monotonic() < deadline:
        prompts = [
            p.strip() for p in page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        ]
        numbers = [int(m.group(1)) for p in prompts if (m := re.fullmatch(r"\[(\d+)\]:", p))]
        idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count()
        busy = any("*" in p for p in prompts)
        if numbers == list(range(1, code_cells + 1)) and idle and not busy:
            return
        idle_with_gaps = idle_with_gaps + 1 if idle and not busy and numbers else 0
        if idle_with_gaps >= 3:
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            raise AssertionError(
                f"the kernel went idle with execution numbers {numbers} for {code_cells} code "
                "cells; last outputs:\n" + "\n---\n".join(outputs[-3:])
            )
        time.sleep(2)
    raise AssertionError(f"the lesson did not finish running within {timeout_s} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(path: Path, settings: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))


def _wait_for_server(server: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
    # Kernels share the server's process group; make sure none outlives it.
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
