"""`make book-check`: open every page of the built book in a real (headless) browser and check that it renders.

    python book/check.py build/book/_build/html --screenshots build/book-check

Serves the site on a local port (http.server in a thread) and, on every page: no page error, no failed request and
no request leaving localhost (the book must work offline: MathJax is served from _static/), every <img> loaded, no
raw Markdown table left in a paragraph, math typeset by MathJax (mjx-container elements on a page with math, no
MathJax error, no raw $$ or \\( left in the visible text), and every local link in the page's text answering.
Full-page screenshots of the front page and a few notebook pages go to the screenshot folder. Needs Debian's
chromium (/usr/bin/chromium, or CHROMIUM=path) and the playwright package (the Makefile installs it into the venv;
playwright's own browser download is not used). Exit code 0 when every page passes.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

# The same closed-network chromium as `make lab-check`: one list of flags for both real-browser checks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lab_check import CHROMIUM_FLAGS  # noqa: E402

# Notebook pages screenshotted besides the front page (the first ones present are taken).
SHOTS = ("01_rope_fundamentals", "04_train_short_test_long", "13_frequency_atlas")
SKIP_PAGES = {"genindex.html", "search.html"}

# Runs in the page once MathJax is done: everything the checks need, as one dict.
INSPECT_JS = r"""
async () => {
  for (let i = 0; i < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
    await new Promise(r => setTimeout(r, 50));  // MathJax's script is deferred: wait until it has started
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  const main = document.querySelector("main") || document.body;
  const imgs = [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
  const rawTables = [];
  for (const p of main.querySelectorAll("p")) {
    const t = p.textContent.trim();
    const lines = t.split("\n").filter(l => l.trim().startsWith("|"));
    if (t.startsWith("|") && (/\|\s*:?-{3,}/.test(t) || lines.length >= 2)) { rawTables.push(t.slice(0, 80)); }
  }
  // text outside code blocks and outside typeset math (navigation included): what a reader sees as prose
  const clone = document.body.cloneNode(true);
  const skip = "pre, code, script, style, mjx-container, .highlight, .output.stream";
  clone.querySelectorAll(skip).forEach(e => e.remove());
  const text = clone.textContent;
  const links = [...main.querySelectorAll("a[href]")].map(a => a.href).filter(h => h.startsWith(location.origin));
  return {
    links,
    imgs,
    rawTables,
    mathElements: main.querySelectorAll(".math").length,
    mjx: document.querySelectorAll("mjx-container").length,
    mjxErrors: [...document.querySelectorAll("mjx-merror")].map(e => e.textContent.slice(0, 80)),
    rawDisplay: (text.match(/\$\$/g) || []).length,
    rawInline: (text.match(/\\\(/g) || []).length,
    hasMathJax: !!window.MathJax,
  };
}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):  # the browser moved on
            super().handle_error(request, client_address)


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def pages(root: Path) -> list[str]:
    """Every HTML page of the site, front page first, then in path order."""
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html") if "_static" not in p.parts)
    found = [p for p in found if p not in SKIP_PAGES]
    return sorted(found, key=lambda p: (p != "index.html", p))


def check_page(page, url: str, base: str, screenshot: Path | None = None) -> tuple[list[str], dict]:
    problems: list[str] = []
    host = urlparse(base).netloc

    def on_request(request):
        if urlparse(request.url).netloc not in (host, "") and not request.url.startswith(("data:", "blob:")):
            problems.append(f"request leaves localhost: {request.url}")

    def on_response(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    handlers = {
        "pageerror": lambda err: problems.append(f"page error: {err}"),
        "requestfailed": lambda req: problems.append(f"request failed: {req.url} ({req.failure})"),
        "request": on_request,
        "response": on_response,
    }
    for event, handler in handlers.items():
        page.on(event, handler)
    try:
        page.goto(url, wait_until="load", timeout=60_000)
        info = page.evaluate(INSPECT_JS)  # waits for MathJax's typesetting and for every image to settle
        if screenshot is not None:  # failing or not: the picture helps to see why
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.goto("about:blank")  # this page's late responses are reported here, not on the next page
        for event, handler in handlers.items():
            page.remove_listener(event, handler)
    bad = [i["src"] for i in info["imgs"] if not i["ok"]]
    problems += [f"image not loaded: {src}" for src in bad]
    problems += [f"broken link: {href}" for href in sorted(set(info["links"])) if link_status(href) >= 400]
    problems += [f"raw Markdown table: {t!r}" for t in info["rawTables"]]
    if info["mjx"] < info["mathElements"]:
        problems.append(f"{info['mathElements']} math elements but only {info['mjx']} typeset by MathJax")
    if info["mathElements"] and not info["hasMathJax"]:
        problems.append("math on the page but MathJax not loaded")
    problems += [f"MathJax error: {e!r}" for e in info["mjxErrors"]]
    if info["rawDisplay"]:
        problems.append(f"{info['rawDisplay']} raw '$$' in the visible text")
    if info["rawInline"]:
        problems.append(f"{info['rawInline']} raw '\\(' in the visible text")
    return problems, info


@functools.lru_cache(maxsize=None)
def link_status(url: str) -> int:
    """HTTP status of a page-local link (fragment dropped), asked once per URL."""
    try:
        with urllib.request.urlopen(url.split("#")[0], timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, nargs="?", default=Path("build/book/_build/html"), help="the built site")
    parser.add_argument("--screenshots", type=Path, default=Path("build/book-check"), help="where the PNGs go")
    args = parser.parse_args()
    if not (args.html / "index.html").exists():
        print(f"book_check: {args.html}/index.html not found; run `make book` first", file=sys.stderr)
        return 2
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        print(
            "book_check: chromium not found; install Debian's chromium (apt-get install -y chromium) or set CHROMIUM",
            file=sys.stderr,
        )
        return 2
    from playwright.sync_api import sync_playwright

    args.screenshots.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.html.resolve())
    all_pages = pages(args.html)
    wanted = {"index.html"} | {p for p in all_pages if Path(p).stem in SHOTS}
    failed, totals = 0, {"images": 0, "math": 0, "mjx": 0}
    shots = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for rel in all_pages:
                try:
                    shot = args.screenshots / f"{Path(rel).stem}.png" if rel in wanted else None
                    problems, info = check_page(page, f"{base}/{rel}", base, shot)
                    shots += [shot] if shot else []
                except Exception as err:  # noqa: BLE001 - playwright's errors: report the page and go on
                    problems, info = [f"could not check: {err}"], {"imgs": [], "links": [], "mathElements": 0, "mjx": 0}
                totals["images"] += len(info["imgs"])
                totals["math"] += info["mathElements"]
                totals["mjx"] += info["mjx"]
                status = "FAIL" if problems else "ok"
                print(
                    f"book_check: {status:4s} {rel}: {len(info['imgs'])} images, {info['mathElements']} math, "
                    f"{info['mjx']} typeset, {len(set(info['links']))} local links"
                )
                for p in problems:
                    print(f"book_check:      {p}")
                failed += bool(problems)
            browser.close()
    finally:
        server.shutdown()
    if len(shots) < len(wanted):
        print(f"book_check: only {len(shots)} of {len(wanted)} screenshots taken", file=sys.stderr)
    print(
        f"book_check: {'FAILED' if failed else 'ok'}: {len(all_pages)} pages ({failed} failing), "
        f"{totals['images']} images loaded, {totals['math']} math elements, {totals['mjx']} typeset by MathJax; "
        f"screenshots: {', '.join(str(s) for s in shots)}"
    )
    return 1 if failed or len(shots) < len(wanted) else 0


if __name__ == "__main__":
    sys.exit(main())
