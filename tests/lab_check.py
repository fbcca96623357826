"""`make lab-check`: start JupyterLab as `make lab` does, open the notebooks in a real (headless) browser, and check.

1. Double-clicking notebooks/01_*.py in the file browser opens it as a notebook (jupytext's view), not as text.
2. Its /lab/tree URL does the same.
3. The executed copy is not marked modified once the kernel is up (its kernelspec matches the kernel's).
4. Saving both unchanged from Lab leaves `git status` of notebooks/ as it was (no jupytext header churn). (The
   source's tab does show "modified" once the kernel reports its language_info, which jupytext deliberately does
   not write into a .py file - so the save is a no-op on disk.)

Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM=path) and the playwright package (the Makefile installs
it into the venv; playwright's own browser download is not used). Lab runs with a throw-away runtime, settings
and workspace folder, so nothing is written to the user's home. Exit code 0 when every check passes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOURCE = "01_rope_fundamentals.py"
EXECUTED = "executed/01_rope_fundamentals.ipynb"
CHROMIUM_FLAGS = [  # a closed network: no background connections, no GPU
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"lab_check: JupyterLab did not answer at {url} within {timeout:.0f} s")


def _check_notebook_view(page, name: str, *, expect_clean: bool) -> list[str]:
    """Problems with the document ``name`` currently shown in the main area (empty list: fine)."""
    problems = []
    panel = page.locator(".jp-MainAreaWidget:visible").last
    try:
        panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError; report what is shown instead
        kind = "a text editor" if page.locator(".jp-FileEditor:visible").count() else "no notebook"
        return [f"{name}: opened as {kind}, not as a notebook"]
    if not panel.locator(".jp-CodeCell").count():
        problems.append(f"{name}: no code cell rendered")
    # Give the kernel time to start and report its info: that is when Lab rewrites metadata that differs.
    page.wait_for_timeout(8_000)
    tab = page.locator(f'.lm-TabBar-tab[title*="{Path(name).name}"]').first
    if expect_clean and "jp-mod-dirty" in (tab.get_attribute("class") or ""):
        problems.append(f"{name}: marked modified right after opening")
    page.keyboard.press("Control+s")  # save unchanged: must not change the file in git's eyes
    page.wait_for_timeout(3_000)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", default="build/lab-check.png", help="where to write the screenshot")
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        print(
            "lab_check: chromium not found; install Debian's chromium (apt-get install chromium) or set CHROMIUM",
            file=sys.stderr,
        )
        return 2
    from playwright.sync_api import sync_playwright

    port, token = _free_port(), secrets.token_hex(16)
    scratch = Path(tempfile.mkdtemp(prefix="lab-check-"))
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"),
    }
    cmd = [
        str(BIN / "jupyter"),
        "lab",
        "--notebook-dir=notebooks",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        "--allow-root",
    ]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = subprocess.run(
        ["git", "status", "--porcelain", "notebooks"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    problems: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/api/status?token={token}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # 1. double-click in the file browser
            page.goto(f"{base}/lab?token={token}")
            item = page.locator(f'.jp-DirListing-item[title*="{SOURCE}"]').first
            item.wait_for(timeout=60_000)
            item.dblclick()
            problems += [f"double-click: {p}" for p in _check_notebook_view(page, SOURCE, expect_clean=False)]
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.screenshot)
            # 2. the tree URL, 3. the executed copy
            for name, clean in ((SOURCE, False), (EXECUTED, True)):
                page.goto(f"{base}/lab/tree/{name}?token={token}&reset")
                problems += [f"/lab/tree: {p}" for p in _check_notebook_view(page, name, expect_clean=clean)]
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    after = subprocess.run(
        ["git", "status", "--porcelain", "notebooks"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    if after != before:
        problems.append(f"opening and saving the notebooks changed files: {after.strip()}")
    for p in problems:
        print(f"lab_check: {p}", file=sys.stderr)
    print(f"lab_check: {'FAILED' if problems else 'ok'}; screenshot in {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
