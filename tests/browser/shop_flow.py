"""A shopper in a real browser: headless Chromium (Debian's package) driven by Selenium.

Finds a product by searching with a typo, opens it, adds it to the cart (noting what the
cart page suggests with it), applies nothing fancy, checks out on the one-page form and reaches the confirmation. Every page is saved
as a screenshot and checked with axe-core (run in the page); the run fails on any
serious or critical violation.

usage: shop_flow.py BASE_URL SCREENSHOT_DIR AXE_JS (js|nojs) QUERY
prints one JSON object: the order number, the pages seen, the axe results per page.
"""
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, shots, axe_path, mode, query = sys.argv[1:6]
javascript = mode == "js"

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
            "--disable-gpu", "--no-first-run"]:
    options.add_argument(arg)
if not javascript:
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(30)
axe_source = open(axe_path).read()
report = {"mode": mode, "pages": [], "violations": {}}


def check(name):
    """Screenshot and axe-core (axe runs through the driver even with page scripts off)."""
    driver.save_screenshot(f"{shots}/{mode}-{name}.png")
    report["pages"].append({"name": name, "url": driver.current_url, "title": driver.title})
    if javascript:
        driver.execute_script(axe_source)
        result = driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(function (r) { done(r.violations); });")
        serious = [{"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
                   for v in result if v["impact"] in ("serious", "critical")]
        report["violations"][name] = serious


try:
    wait = WebDriverWait(driver, 20)
    driver.get(base + "/")
    check("home")
    box = driver.find_element(By.ID, "q")
    box.send_keys(query)
    box.submit()
    wait.until(lambda d: "/search" in d.current_url)
    check("search")
    driver.find_element(By.CSS_SELECTOR, ".card a").click()
    wait.until(lambda d: "/p/" in d.current_url)
    check("product")
    driver.find_element(By.CSS_SELECTOR, "form.add button").click()
    wait.until(lambda d: d.current_url.endswith("/cart"))
    check("cart")
    report["cart_suggestions"] = {
        "heading": driver.find_element(By.ID, "with-cart").text,
        "names": [e.text for e in driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=with-cart] .card .name")],
    }
    driver.find_element(By.CSS_SELECTOR, "a.button[href='/checkout']").click()
    wait.until(lambda d: d.current_url.endswith("/checkout"))
    check("checkout")
    fields = {"email": "ada@example.com", "name": "Ada Lovelace", "line1": "1 Orbit Way",
              "city": "Tranquility Base", "postal_code": "00001"}
    for field, value in fields.items():
        driver.find_element(By.ID, field).send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "form.checkout button[type=submit]").click()
    wait.until(lambda d: "/orders/" in d.current_url)
    check("confirmation")
    report["order_heading"] = driver.find_element(By.TAG_NAME, "h1").text
    driver.get(base + "/account")
    wait.until(lambda d: d.current_url.endswith("/account/sign-in"))
    check("sign-in")
    driver.find_element(By.ID, "up-name").send_keys("Ada")
    driver.find_element(By.ID, "up-email").send_keys(f"ada-{mode}@example.com")
    driver.find_element(By.ID, "up-password").send_keys("correct horse battery")
    driver.find_element(By.CSS_SELECTOR, "form[action='/account/sign-up'] button").click()
    wait.until(lambda d: d.current_url.endswith("/account"))
    check("account")
    report["account_heading"] = driver.find_element(By.TAG_NAME, "h1").text
    driver.get(base + "/no/such/page")
    check("not-found")
    report["not_found_heading"] = driver.find_element(By.TAG_NAME, "h1").text
finally:
    driver.quit()

print(json.dumps(report))
