"""Headless Chromium for tests that look at a page as a person would: screenshot, DOM, console messages.

Debian's ``chromium`` package (the test setup installs it: scripts/_venv.sh).
Every call uses a throwaway profile, no sandbox (tests run as root in CI),
no GPU, and a bounded run time. Console messages are read from Chromium's own
log (``--enable-logging=stderr --v=1``: lines with ``CONSOLE``).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_CONSOLE = re.compile(r"CONSOLE\(\d+\)\]|:CONSOLE:|console\.(error|warn)|Uncaught", re.I)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], *, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    exe = chromium_path()
    assert exe is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", "--disable-sync", "--hide-scrollbars", "--mute-audio",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=1", "--virtual-time-budget=3000",
               *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_messages(stderr: str) -> list[str]:
    """The page's console lines in Chromium's log."""
    return [line for line in stderr.splitlines() if _CONSOLE.search(line)]


def dump_dom(page: Path) -> tuple[str, list[str]]:
    """(the DOM after scripts ran, console messages)."""
    done = _run(["--dump-dom", page.resolve().as_uri()])
    return done.stdout, console_messages(done.stderr)


def screenshot(page: Path, png: Path, *, width: int = 1000, height: int = 4000) -> list[str]:
    """Write a PNG of the page; returns the console messages."""
    done = _run([f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()])
    assert png.is_file() and png.stat().st_size > 0, f"no screenshot: {done.stderr[-2000:]}"
    return console_messages(done.stderr)


_COUNTER = """<!DOCTYPE html><html><body><canvas id="c"></canvas><script>
var img = new Image();
img.onload = function () {
  var c = document.getElementById('c'); c.width = img.width; c.height = img.height;
  var ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  var d = ctx.getImageData(0, 0, img.width, img.height).data, n = 0;
  for (var i = 0; i < d.length; i += 4) { if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) { n++; } }
  document.body.setAttribute('data-size', img.width + 'x' + img.height);
  document.body.setAttribute('data-non-white', String(n));
};
img.src = 'data:image/png;base64,%s';
</script></body></html>"""


def non_white_pixels(png: Path) -> tuple[int, str]:
    """(pixels that are not (near) white, "WxH"): the PNG decoded by a canvas in a second headless page."""
    with tempfile.TemporaryDirectory(prefix="png-count-") as tmp:
        page = Path(tmp) / "count.html"
        page.write_text(_COUNTER % base64.b64encode(png.read_bytes()).decode())
        dom, _ = dump_dom(page)
    count = re.search(r'data-non-white="(\d+)"', dom)
    size = re.search(r'data-size="(\d+x\d+)"', dom)
    assert count and size, f"the PNG could not be decoded: {dom[:500]}"
    return int(count.group(1)), size.group(1)
