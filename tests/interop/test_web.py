"""The web page in a real browser: Debian's Chromium, driven by Selenium
through chromedriver, headless.

A person's steps: draw a 7 with the pointer on the canvas and read the answer;
upload a photo from examples/ and read its digit; pick another served model;
on a server with a token, give the token when the page asks. Throughout, the
page must make no request outside the server and leave no error in the
browser's console (a missing favicon counts).

Run by scripts/test.sh with the project venv (selenium; scripts/setup.sh
browser installs Chromium and chromedriver from Debian). Where no browser can
be had the tests are skipped, saying why, never passed silently. Needs
MNIST_SERVER_BIN like test_interop.py.
"""
import http.client
import json
import os
import pathlib
import shutil
import ssl
import statistics
import struct
import tempfile
import time
import unittest
import zlib

from common import ROOT, Server, start_secure_server, stop_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# Selenium must never fetch a browser or a driver of its own.
os.environ["SE_OFFLINE"] = "true"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    MISSING = None
except ImportError as error:  # pragma: no cover - depends on the machine
    MISSING = f"selenium is not installed ({error}): scripts/setup.sh browser"
if MISSING is None and not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    MISSING = (f"no browser: {CHROMIUM} or {CHROMEDRIVER} is missing (Debian's chromium and chromium-driver; "
               "scripts/setup.sh browser installs them)")
if MISSING:
    print(f"test_web: SKIPPING the browser tests: {MISSING}", flush=True)

PHOTO = ROOT / "examples/digits/photo-label-4.jpg"
SCAN = ROOT / "examples/digits/scan-dark-on-white-label-4.png"
# A photo of a number (widely spaced, on clean paper), named after its digits.
NUMBER_PHOTO = next((ROOT / "examples/numbers").glob("amount-*.jpg"), ROOT / "examples/numbers/missing.jpg")


def browser(width=1280, height=900):
    """Headless Chromium with the browser's console and network logs kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="mnist-chromium-")
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--disable-default-apps", "--disable-extensions",
                 # Headless windows count as hidden: without these, timers (the page's
                 # debounce) are throttled to once a second.
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.profile_dir = profile
    return driver


def close_browser(driver):
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)


def draw(driver, strokes, width=280):
    """Draws `strokes` (lists of (x, y) in the pad's pixels: 280x280, or `width`x280) with pointer events."""
    pad = driver.find_element(By.ID, "pad")
    scale = pad.size["width"] / width
    for stroke in strokes:
        # Offsets are from the element's centre.
        points = [((x - width / 2) * scale, (y - 140) * scale) for x, y in stroke]
        actions = ActionChains(driver, duration=10)
        actions.move_to_element_with_offset(pad, int(points[0][0]), int(points[0][1])).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for step in range(1, 5):  # a few moves per segment, as a hand makes them
                t = step / 4
                actions.move_to_element_with_offset(pad, int(x0 + (x1 - x0) * t), int(y0 + (y1 - y0) * t))
        actions.release().perform()


SEVEN = [[(70, 60), (210, 60), (150, 235)]]
ONE = [[(140, 50), (140, 235)]]


def png_gray(width, height, value):
    """A gray PNG whose pixel (x, y) is value(x, y), written without Pillow."""
    rows = b"".join(b"\x00" + bytes(value(x, y) for x in range(width)) for y in range(height))
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def wait_for(driver, condition, timeout=15):
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: condition(d))


def drawn_digit(driver):
    """The digit the page shows for the drawing (None while it shows none)."""
    return driver.execute_script(
        "const r = document.querySelector('#drawing-result .result[data-digit]'); return r ? r.dataset.digit : null;")


class Page:
    """What a test reads off the browser as it goes: network and console."""

    def __init__(self, driver, origin):
        self.driver, self.origin = driver, origin
        self.requests, self.console = [], []

    def collect(self):
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        self.console += self.driver.get_log("browser")

    def outside(self):
        """Requests that left for the network elsewhere than the server (the
        browser's own chrome:// pages are not network requests)."""
        return [url for url in self.requests
                if url.startswith(("http:", "https:", "ws:", "wss:", "ftp:")) and not url.startswith(self.origin + "/")]

    def errors(self):
        return [entry for entry in self.console if entry["level"] == "SEVERE"]


@unittest.skipIf(MISSING, MISSING)
class WebPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--model", str(ROOT / "models/mnist.onnx"), "--model", str(ROOT / "models/mnist-int8.onnx"),
                            "--http-addr", "127.0.0.1:0")
        cls.addClassCleanup(stop_server, cls.server)
        cls.origin = f"http://{cls.server.http_addr}"
        cls.driver = browser()
        cls.addClassCleanup(close_browser, cls.driver)
        cls.page = Page(cls.driver, cls.origin)
        cls.driver.get(cls.origin + "/")
        # "chosen by the server" (the photo and reading models), then the two served models.
        wait_for(cls.driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 3)

    def tearDown(self):
        self.page.collect()

    def test_1_draw_a_seven_and_read_it_live(self):
        driver = self.driver
        driver.find_element(By.ID, "clear").click()
        latencies = []
        for attempt in range(5):
            driver.find_element(By.ID, "clear").click()
            wait_for(driver, lambda d: drawn_digit(d) is None)
            draw(driver, SEVEN)
            wait_for(driver, lambda d: drawn_digit(d) is not None)
            result = driver.find_element(By.ID, "drawing-result")
            # The answer shown is for the finished drawing (the debounce may first answer a part of it).
            wait_for(driver, lambda d: d.execute_script(
                "const r = document.getElementById('drawing-result');"
                "return r.dataset.latencyMs !== undefined && performance.now() - 0 > 0;"))
            time.sleep(0.3)
            self.assertEqual(drawn_digit(driver), "7")
            latencies.append(float(result.get_attribute("data-latency-ms")))
        bars = driver.find_elements(By.CSS_SELECTOR, "#drawing-result .bars li")
        self.assertEqual(len(bars), 10)
        seen = driver.execute_script(
            "const c = document.querySelector('#drawing-result .seen canvas');"
            "return Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 == 0 && v > 0).length;")
        self.assertGreater(seen, 30, "the 28x28 image the model saw is drawn, with ink in it")
        print(f"\nfirst prediction after the last stroke: median {statistics.median(latencies):.1f} ms, "
              f"max {max(latencies):.1f} ms over {len(latencies)} drawings (debounce 60 ms included)", flush=True)

    def test_2_undo_and_clear(self):
        driver = self.driver
        driver.find_element(By.ID, "clear").click()
        draw(driver, ONE)
        wait_for(driver, lambda d: drawn_digit(d) == "1")
        draw(driver, [[(60, 140), (220, 140)]])  # a bar across: no longer a 1
        wait_for(driver, lambda d: drawn_digit(d) is not None and
                 d.find_element(By.ID, "drawing-result").get_attribute("data-latency-ms") is not None)
        driver.find_element(By.ID, "undo").click()
        wait_for(driver, lambda d: drawn_digit(d) == "1")
        driver.find_element(By.ID, "clear").click()
        wait_for(driver, lambda d: drawn_digit(d) is None)
        self.assertIn("Draw a digit", driver.find_element(By.ID, "drawing-result").text)

    def test_3_upload_photos_and_read_their_digits(self):
        driver = self.driver
        driver.find_element(By.ID, "files").send_keys(f"{PHOTO}\n{SCAN}")
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photo-results > li[data-digit]")) == 2)
        digits = [li.get_attribute("data-digit") for li in driver.find_elements(By.CSS_SELECTOR, "#photo-results > li")]
        self.assertEqual(digits, ["4", "4"])
        # A blank page and a digit cut by the frame: said in words.
        with tempfile.TemporaryDirectory() as folder:
            blank, cut = pathlib.Path(folder, "blank.png"), pathlib.Path(folder, "cut.png")
            blank.write_bytes(png_gray(200, 150, lambda x, y: 235))
            # A ring (a 0) of dark ink whose left part is off the image.
            ring = lambda x, y: 20 if 40 <= ((x - 20) ** 2 + (y - 100) ** 2) ** 0.5 < 52 else 230
            cut.write_bytes(png_gray(200, 200, ring))
            driver.find_element(By.ID, "files").send_keys(f"{blank}\n{cut}")
            wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photo-results > li[data-digit]")) == 4)
            items = driver.find_elements(By.CSS_SELECTOR, "#photo-results > li")
            by_name = {li.find_element(By.CSS_SELECTOR, ".source span").text: li for li in items[:2]}
            self.assertEqual(by_name["blank.png"].get_attribute("data-digit"), "none")
            self.assertIn("No digit found", by_name["blank.png"].text)
            self.assertIn("runs into the edge of the image", by_name["cut.png"].text)
        # Not an image: an error in words.
        with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as junk:
            junk.write(b"this is not a picture")
        try:
            driver.find_element(By.ID, "files").send_keys(junk.name)
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo-results > li[data-error]"))
            text = driver.find_element(By.CSS_SELECTOR, "#photo-results > li[data-error]").text
            self.assertIn("could not use this image", text)
        finally:
            os.unlink(junk.name)

    def test_4_the_model_panel_and_choosing_a_model(self):
        driver = self.driver
        info = driver.find_element(By.ID, "model-info").text
        options = [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#model option")]
        self.assertEqual(options, ["chosen by the server", "mnist (default)", "mnist-int8"])
        self.assertIn("mnist (default)", info)
        self.assertIn("drawings and photos (the server's photo model)", info)
        self.assertIn("99.47 %", info)
        self.assertIn("cpu", info)
        driver.find_element(By.ID, "clear").click()
        draw(driver, SEVEN)
        wait_for(driver, lambda d: drawn_digit(d) == "7")
        driver.execute_script("const s = document.getElementById('model'); s.value = 'mnist-int8';"
                              "s.dispatchEvent(new Event('change'));")
        wait_for(driver, lambda d: "mnist-int8 (" in d.execute_script(
            "const m = document.querySelector('#drawing-result .meta'); return m ? m.textContent : '';"))
        self.assertIn("int8", driver.find_element(By.ID, "model-info").text)
        self.assertIn("as picked", driver.find_element(By.ID, "model-info").text)

    def test_5_write_a_number_and_read_a_photo_of_one(self):
        driver = self.driver
        driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="number"]').click()
        wait_for(driver, lambda d: d.find_element(By.ID, "pad").get_attribute("width") == "700")
        seven = [[(x + 230, y) for x, y in SEVEN[0]]]
        one_left, one_right = [[(120, 50), (120, 235)]], [[(560, 50), (560, 235)]]
        draw(driver, one_left + seven + one_right, width=700)
        text = lambda d: d.execute_script(
            "const r = document.querySelector('#drawing-result .reading'); return r ? r.dataset.text : null;")
        wait_for(driver, lambda d: text(d) == "171")
        boxes = driver.find_elements(By.CSS_SELECTOR, "#drawing-result .read-digits li")
        self.assertEqual(len(boxes), 3)
        # A photo of a number, read in number mode, with its boxes drawn on it.
        driver.find_element(By.ID, "files").send_keys(str(NUMBER_PHOTO))
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo-results > li[data-text]"))
        item = driver.find_element(By.CSS_SELECTOR, "#photo-results > li[data-text]")
        self.assertEqual(item.get_attribute("data-text"), NUMBER_PHOTO.stem.rsplit("-", 1)[1])
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo-results canvas.boxed"))
        driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="digit"]').click()
        wait_for(driver, lambda d: d.find_element(By.ID, "pad").get_attribute("width") == "280")

    def test_9_no_request_outside_the_server_and_a_clean_console(self):
        self.page.collect()
        self.assertTrue(any(url.endswith("/api/classify") or "/api/classify?" in url for url in self.page.requests),
                        self.page.requests)
        self.assertEqual(self.page.outside(), [])
        # The junk upload's 400 is the one error expected: the browser logs failed fetches.
        errors = [e for e in self.page.errors() if "/api/classify" not in e["message"] or "400" not in e["message"]]
        self.assertEqual(errors, [])


@unittest.skipIf(MISSING, MISSING)
class SecurePageTest(unittest.TestCase):
    """A server with TLS and a token: the page asks for the token and sends
    it as a bearer header; without it, nothing but the page itself."""

    @classmethod
    def setUpClass(cls):
        start_secure_server(cls)
        port = cls.server.http_addr.rsplit(":", 1)[1]
        cls.origin = f"https://localhost:{port}"
        cls.driver = browser()
        cls.addClassCleanup(close_browser, cls.driver)

    def test_the_page_asks_for_the_token_and_then_works(self):
        driver = self.driver
        # The development CA is not the system's: accept it for this session.
        driver.execute_cdp_cmd("Security.setIgnoreCertificateErrors", {"ignore": True})
        driver.get(self.origin + "/")
        form = wait_for(driver, lambda d: d.find_element(By.ID, "token-form").is_displayed() and
                        d.find_element(By.ID, "token-form"))
        self.assertIn("needs a token", form.text)
        driver.find_element(By.ID, "token").send_keys("wrong-token")
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait_for(driver, lambda d: "refused" in d.find_element(By.ID, "error").text)
        driver.find_element(By.ID, "token").send_keys(self.token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait_for(driver, lambda d: not d.find_element(By.ID, "token-form").is_displayed())
        draw(driver, SEVEN)
        wait_for(driver, lambda d: drawn_digit(d) == "7")
        self.assertNotIn(self.token, driver.current_url)


class PageHeadersTest(unittest.TestCase):
    """The page's headers, and the flag that serves the API without it (no browser needed)."""

    def get(self, server, path):
        host, port = server.http_addr.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def test_strict_content_security_policy_and_a_small_page(self):
        server = Server("--http-addr", "127.0.0.1:0")
        try:
            status, headers, body = self.get(server, "/")
            self.assertEqual(status, 200)
            policy = headers["content-security-policy"]
            for rule in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                         "frame-ancestors 'none'"]:
                self.assertIn(rule, policy)
            self.assertNotIn("unsafe-inline", policy)
            self.assertEqual(headers["x-content-type-options"], "nosniff")
            weight = len(body) + sum(len(self.get(server, path)[2])
                                     for path in ["/web/app.js", "/web/app.css", "/favicon.svg"])
            self.assertLess(weight, 100_000)
            print(f"\npage weight: {weight:,} bytes (HTML, JS, CSS, icon)", flush=True)
        finally:
            stop_server(server)

    def test_no_web_page_serves_the_api_only(self):
        server = Server("--http-addr", "127.0.0.1:0", "--no-web-page")
        try:
            self.assertEqual(self.get(server, "/")[0], 404)
            self.assertEqual(self.get(server, "/api/models")[0], 404)
            self.assertEqual(self.get(server, "/v2/models/mnist")[0], 200)
        finally:
            stop_server(server)


if __name__ == "__main__":
    unittest.main(verbosity=2)
