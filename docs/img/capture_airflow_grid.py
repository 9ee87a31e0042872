"""Screenshot logged-in Airflow UI pages with headless Chromium (how docs/img/*.png were made).

    python docs/img/capture_airflow_grid.py URL USER PASSWORD PAGE OUT.png [PAGE OUT.png ...]

The Shopflow view's pages are ``/plugin/shopflow-models`` (likewise ``-runs``,
``-monitoring``, ``-dbt-docs``): the Airflow UI with the view in its frame.

Logs in the way the UI does (``POST /auth/token`` with the printed login; the JWT goes
into the ``_token`` cookie the api-server reads), then loads ``PAGE`` (e.g.
``/dags/shopflow_training/runs/<run_id>``) in ``chromium --headless`` over the Chrome
DevTools Protocol and saves a PNG. No Playwright: ``websockets`` and ``httpx`` only.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import subprocess
import sys
import tempfile
import time

import httpx
import websockets

WIDTH, HEIGHT = 1600, 1000


async def _capture(ws_url: str, base: str, token: str, shots: list[tuple[str, str]]) -> None:
    ids = itertools.count(1)
    async with websockets.connect(ws_url, max_size=64 * 1024 * 1024) as ws:

        async def call(method: str, **params: object) -> dict[str, object]:
            msg_id = next(ids)
            await ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("id") == msg_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return dict(reply.get("result", {}))

        await call("Network.enable")
        await call("Network.setCookie", name="_token", value=token, url=base, path="/",
                   httpOnly=True)
        await call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                   deviceScaleFactor=1, mobile=False)
        await call("Page.enable")
        for page, out in shots:
            await call("Page.navigate", url=base + page)
            await asyncio.sleep(12)  # the SPA fetches the grid (or loads the frame) after load
            shot = await call("Page.captureScreenshot", format="png")
            with open(out, "wb") as handle:
                handle.write(base64.b64decode(str(shot["data"])))


def main(base: str, user: str, password: str, *pages: str) -> None:
    if not pages or len(pages) % 2:
        raise SystemExit("give PAGE OUT.png pairs")
    shots = list(zip(pages[::2], pages[1::2], strict=True))
    token = httpx.post(f"{base}/auth/token", json={"username": user, "password": password},
                       timeout=15).json()["access_token"]
    port = 9333
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
             f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    targets_of = [t for t in targets if t.get("type") == "page"]
                    if targets_of:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("chromium did not start")
                time.sleep(0.5)
            asyncio.run(_capture(targets_of[0]["webSocketDebuggerUrl"], base, token, shots))
        finally:
            browser.terminate()
            browser.wait(timeout=20)


if __name__ == "__main__":
    main(*sys.argv[1:])
