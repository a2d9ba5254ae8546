#!/usr/bin/env python3
"""Screenshots of the web page for the README, made in the same headless
Chromium as the browser tests: a server with every shipped model, a 7 drawn
on the pad and two photos from examples/ read, at desktop width and at a
phone's 390 pixels.

    .venv/bin/python scripts/screenshot-page.py [OUT_DIR]   default docs/img

Needs a built server (cargo build -p mnist-server; MNIST_SERVER_BIN to use
another) and scripts/setup.sh browser.
"""
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/interop"))

from common import Server, stop_server  # noqa: E402
from test_web import MISSING, PHOTO, SCAN, SEVEN, By, browser, close_browser, draw, drawn_digit, wait_for  # noqa: E402


def shoot(origin, out, width, height):
    driver = browser(width, height)
    try:
        driver.get(origin + "/")
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        draw(driver, SEVEN)
        wait_for(driver, lambda d: drawn_digit(d) == "7")
        driver.find_element(By.ID, "files").send_keys(f"{PHOTO}\n{SCAN}")
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photo-results > li[data-digit]")) == 2)
        time.sleep(0.3)  # the bars' transition
        # The whole page, not only the window.
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, max(height, full + 100))
        time.sleep(0.2)
        driver.save_screenshot(str(out))
        print(f"wrote {out}")
    finally:
        close_browser(driver)


def main():
    if MISSING:
        sys.exit(f"screenshot-page: {MISSING}")
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs/img"
    out_dir.mkdir(parents=True, exist_ok=True)
    server = Server("--model-repository", str(ROOT / "models"), "--default-model", "mnist", "--http-addr", "127.0.0.1:0")
    try:
        origin = f"http://{server.http_addr}"
        shoot(origin, out_dir / "web-page.png", 1280, 800)
        shoot(origin, out_dir / "web-page-phone.png", 390, 844)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
