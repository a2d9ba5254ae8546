#!/usr/bin/env python3
"""Screenshots of the web page for the README, made in the same headless
Chromium as the browser tests: a server with every shipped model, a 7 drawn
on the pad and two photos from examples/ read, at desktop width and at a
phone's 390 pixels; and the page reading numbers: one written on the pad and
the photos of examples/numbers.

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


def save_whole_page(driver, out, width, height):
    """A screenshot of the whole page, not only the window."""
    time.sleep(0.3)  # the bars' transition
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, full + 100))
    time.sleep(0.2)
    driver.save_screenshot(str(out))
    print(f"wrote {out}")


def shoot(origin, out, width, height):
    driver = browser(width, height)
    try:
        driver.get(origin + "/")
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        draw(driver, SEVEN)
        wait_for(driver, lambda d: drawn_digit(d) == "7")
        driver.find_element(By.ID, "files").send_keys(f"{PHOTO}\n{SCAN}")
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photo-results > li[data-digit]")) == 2)
        save_whole_page(driver, out, width, height)
    finally:
        close_browser(driver)


def shoot_numbers(origin, out, width, height):
    driver = browser(width, height)
    try:
        driver.get(origin + "/")
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="number"]').click()
        wait_for(driver, lambda d: d.find_element(By.ID, "pad").get_attribute("width") == "700")
        seven = [[(x + 230, y) for x, y in SEVEN[0]]]
        draw(driver, [[(120, 50), (120, 235)]] + seven + [[(560, 50), (560, 235)]], width=700)
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#drawing-result .reading"))
        photos = sorted((ROOT / "examples/numbers").glob("*.jpg"))
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in photos))
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photo-results canvas.boxed")) == len(photos))
        save_whole_page(driver, out, width, height)
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
        shoot_numbers(origin, out_dir / "web-page-numbers.png", 1280, 800)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
