"""Check the interactive latent map of a report in a real headless browser, and take a screenshot.

Opens REPORT (a run's report.html) in headless Chromium, driven through the DevTools protocol over a
pipe (``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file descriptors 3 and 4, so
nothing beyond the standard library is needed), moves the pointer over the latent map, and checks that
the decoding beside the map changed and says where the pointer is. Writes a screenshot of the map and
the decoding after the move.

    python scripts/check_latent_map.py RUN/report.html --out latent-check.png [--at 0.3 0.7]

``--at`` places the pointer at fractions of the plot area (from its left and from its top). Exits 0 with
"skipped" when no Chromium is installed (Debian's package: ``apt-get install chromium``), 1 when the
check fails. Not part of the test suite: it needs a browser.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


class Browser:
    """A headless Chromium and one page of it, spoken to over the DevTools pipe."""

    def __init__(self, exe: str, width: int = 1280, height: int = 1000) -> None:
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()
        # Above 3 and 4, so that placing them there in the child cannot overwrite one with the other.
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        to_child_r, from_child_w = child_in, child_out
        self._profile = tempfile.mkdtemp(prefix="aekit-chromium-")

        def place_pipes() -> None:  # in the child: it reads commands on fd 3 and writes answers on fd 4
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-pipe", f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=place_pipes,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False,
             timeout: float = 30.0) -> dict[str, Any]:
        """Send a command and wait for its answer (events that arrive meanwhile are dropped)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session is not None and not browser:
            msg["sessionId"] = self.session
        os.write(self._to_child_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return dict(answer.get("result", {}))
            chunk = os.read(self._from_child_r, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed its DevTools pipe")
            self._buf += chunk
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, browser=True)["sessionId"]
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})
        for _ in range(200):
            if self.eval("document.readyState") == "complete":
                return
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not finish loading")

    def eval(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child_w)
        os.close(self._from_child_r)
        shutil.rmtree(self._profile, ignore_errors=True)


def check(report: Path, out: Path, at: tuple[float, float], exe: str) -> dict[str, Any]:
    b = Browser(exe)
    try:
        b.open(report.resolve().as_uri())
        if not b.eval("!!document.getElementById('aekit-latent-img')"):
            raise SystemExit(f"{report} has no interactive latent map (a report of image data with a code of 2 or "
                             "more dimensions has one)")
        b.eval("document.getElementById('aekit-latent-img').scrollIntoView({block: 'center'})")
        time.sleep(0.2)
        geo = b.eval("""(() => {const img = document.getElementById('aekit-latent-img');
            const r = img.getBoundingClientRect();
            const d = JSON.parse(document.getElementById('aekit-latent-data').textContent);
            return {left: r.left, top: r.top, width: r.width, height: r.height, box: d.box, size: d.size,
                    xlim: d.xlim, ylim: d.ylim};})()""")
        before = b.eval("document.getElementById('aekit-latent-view').toDataURL()")
        sx, sy = geo["width"] / geo["size"][0], geo["height"] / geo["size"][1]
        x0, y0, x1, y1 = geo["box"]
        x = geo["left"] + (x0 + at[0] * (x1 - x0)) * sx
        y = geo["top"] + (y0 + at[1] * (y1 - y0)) * sy
        for t in range(1, 6):  # a short glide onto the point, as a hand would move it
            b.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x - 40 + 8 * t, "y": y - 25 + 5 * t})
        time.sleep(0.2)
        after = b.eval("document.getElementById('aekit-latent-view').toDataURL()")
        label = b.eval("document.getElementById('aekit-latent-at').textContent")
        fig = b.eval("""(() => {const r = document.getElementById('aekit-latent-img').closest('figure')
            .getBoundingClientRect(); return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width,
            height: r.height};})()""")  # the clip is in page coordinates, the rectangle in the viewport's
        shot = b.send("Page.captureScreenshot", {"format": "png", "clip": {**fig, "scale": 1}})
        out.write_bytes(base64.b64decode(shot["data"]))
        u = geo["xlim"][0] + at[0] * (geo["xlim"][1] - geo["xlim"][0])
        v = geo["ylim"][1] - at[1] * (geo["ylim"][1] - geo["ylim"][0])
        span = [geo["xlim"][1] - geo["xlim"][0], geo["ylim"][1] - geo["ylim"][0]]
        return {"pointer": [round(x, 1), round(y, 1)], "expected_code": [round(u, 2), round(v, 2)], "span": span,
                "label": label,
                "decoding_changed": before != after, "screenshot": str(out)}
    finally:
        b.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, help="a run's report.html")
    p.add_argument("--out", type=Path, default=Path("latent-check.png"), help="screenshot (default: latent-check.png)")
    p.add_argument("--at", type=float, nargs=2, default=(0.3, 0.35), metavar=("FX", "FY"),
                   help="pointer position as fractions of the plot area from its left and top (default: 0.3 0.35)")
    p.add_argument("--browser", help="path of the Chromium executable (default: the first found on PATH)")
    a = p.parse_args()
    exe = a.browser or next((shutil.which(n) for n in BROWSERS if shutil.which(n)), None)
    if exe is None:
        print("skipped: no Chromium found (apt-get install chromium)")
        return 0
    res = check(a.report, a.out, (a.at[0], a.at[1]), exe)
    print(json.dumps(res, indent=2))
    # The label names the code under the pointer; the browser places the pointer on whole CSS pixels,
    # so it may differ from the asked-for point by a pixel's worth of code (a fraction of a percent).
    m = re.fullmatch(r"decoding at \((-?[\d.]+), (-?[\d.]+)\)", str(res["label"]))
    close = m is not None and all(abs(float(m.group(k + 1)) - res["expected_code"][k]) <= 0.01 * res["span"][k] + 0.01
                                  for k in range(2))
    ok = res["decoding_changed"] and close
    if not ok:
        print(f"FAILED: expected the decoding to change and a label near {res['expected_code']}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
