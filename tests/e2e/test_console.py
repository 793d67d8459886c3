"""The console in a real headless Chromium against the running services.

One operator's morning, as the console is used: sign in with a token, look a member up,
build and save a segment while its size is counted, forecast and launch a campaign on
it, run the scheduler, then open the report and find the chart drawing the numbers that
the members' orders make; store a playbook change after the page showed where its
mistake was; and a read-only token that cannot save. Screenshots of the main pages are
kept in ``CONSOLE_SCREENSHOTS`` (default ``.local/artifacts/console``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.campaigns import HOLDOUT, assign, parse_plan
from shared.domain.lifecycle import STAGES
from shared.domain.stats import newcombe_difference
from tests.builders import envelope
from tests.support import ServiceProcess, eventually, produce, wait_until_processed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOP = "shop-console"
FULL_TOKEN = "console-full-token-0123456789"
READ_TOKEN = "console-read-token-0123456789"
DAY = timedelta(days=1)
Json = dict[str, Any]
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / ".local" / "artifacts" / "console"))


def joined(member: str, at: datetime, channel: str) -> Json:
    data = {"channel": channel, "marketing_consent": True, "city": "杭州"}
    return envelope("member.joined", data, event_id=f"{member}-joined", at=at, member=member, shop=SHOP, source="t")


def paid(member: str, order: str, at: datetime, amount: str) -> Json:
    data: Json = {"order_id": order, "amount": amount, "currency": "CNY"}
    return envelope("order.paid", data, event_id=f"{order}-paid", at=at, member=member, shop=SHOP, source="t")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Debian's Chromium, headless, in UTC and English unless a page asks for Chinese."""
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(argument)
    options.add_argument("--lang=en-US")
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"), env={**os.environ, "TZ": "UTC"})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        screenshot(driver, "last")  # where the browser was when the test ended, failed or not
        for entry in driver.get_log("browser"):  # type: ignore[no-untyped-call]  # shown with the test's output when it fails
            print(f"browser {entry['level']}: {entry['message']}")
        driver.quit()


def wait_for(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = 30) -> Any:
    # A page that re-draws a list between finding an element and reading it makes it stale: look again.
    waiting = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(check)


def shown(driver: WebDriver, css: str) -> WebElement:
    found: WebElement = wait_for(
        driver, lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), False)
    )
    return found


def go(driver: WebDriver, how: Callable[[], Any]) -> None:
    """Leave the page by ``how`` (a click, a URL) and wait until the next one has shown its first data.

    The page being left carries a mark in its window; the next page has none, and its script marks
    its body ready. While the browser navigates, the driver may answer any error: those are waited out.
    """
    driver.execute_script("window.leftByTest = true")
    how()
    WebDriverWait(driver, 30, poll_frequency=0.2, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.leftByTest && document.body?.dataset.ready === 'true'")
    )


def open_page(driver: WebDriver, link: str) -> None:
    go(driver, driver.find_element(By.LINK_TEXT, link).click)


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def set_value(driver: WebDriver, element: WebElement, value: str) -> None:
    """Set an input's value as typing would, with the input and change events the page listens to."""
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        element,
        value,
    )


def screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"console-{name}.png"))


def sign_in(driver: WebDriver, base: str, token: str) -> None:
    go(driver, lambda: driver.get(f"{base}/console/signin"))
    driver.find_element(By.ID, "signin-token").send_keys(token)
    shop = driver.find_element(By.ID, "signin-shop")
    shop.clear()
    shop.send_keys(SHOP)
    go(driver, driver.find_element(By.ID, "signin-submit").click)
    assert driver.current_url.rstrip("/").endswith("/console")


def chart_data(driver: WebDriver, canvas: str) -> list[list[Any]]:
    """The numbers Chart.js draws on ``canvas``: one list per dataset."""
    data = driver.execute_script(
        "const chart = Chart.getChart(document.getElementById(arguments[0]));"
        "return chart ? chart.data.datasets.map((set) => set.data) : null;",
        canvas,
    )
    assert data is not None, f"no chart drawn on #{canvas}"
    return list(data)


def drawn_pixels(driver: WebDriver, canvas: str) -> int:
    """How many pixels of the canvas are painted: a chart that drew nothing has none."""
    return int(
        driver.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;",
            canvas,
        )
    )


def percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 10000) / 100


async def test_an_operators_morning_in_the_console(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess], browser: WebDriver
) -> None:
    engagement = start_service("engagement")
    api = start_service("api", API_TOKENS=FULL_TOKEN, API_READ_TOKENS=READ_TOKEN)
    base = f"http://127.0.0.1:{api.env['API_PORT']}"
    topics = {key: value for key, value in engagement.env.items() if key.startswith("TOPIC_")}
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    t0 = now - 40 * DAY
    wave_at = now - 20 * DAY
    app_members = [f"m-{i:02d}" for i in range(40)]
    web_members = [f"w-{i:02d}" for i in range(8)]
    events = [joined(m, t0 + timedelta(minutes=i), "app") for i, m in enumerate(app_members)]
    events += [joined(m, t0 + timedelta(minutes=i), "web") for i, m in enumerate(web_members)]
    events += [paid("m-00", "o-first", t0 + DAY, "129.00")]
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {FULL_TOKEN}"}, timeout=60
    ) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout_s=60)
        await produce(topics, events)
        await wait_until_processed(engine, len(events), timeout_s=60)

        # Sign in, and the morning view counts the members by stage.
        sign_in(browser, base, FULL_TOKEN)
        assert text_of(browser, "#session-shop") == SHOP
        assert text_of(browser, "#session-scope") == "Full access"
        tags = (await client.get(f"/v1/shops/{SHOP}/tags")).json()["items"]
        stages = {
            tag["id"].removeprefix("lifecycle.stage_"): tag["members"]
            for tag in tags
            if tag["id"].startswith("lifecycle.stage_")
        }
        assert (stages["prospect"], stages["new"]) == (len(events) - 2, 1)  # only m-00 has paid
        shown(browser, "#lifecycle-table tr[data-stage]")
        drawn = {
            row.get_attribute("data-stage"): row.find_element(By.CSS_SELECTOR, "td.number").text
            for row in browser.find_elements(By.CSS_SELECTOR, "#lifecycle-table tr[data-stage]")
        }
        assert drawn == {stage: str(count) for stage, count in stages.items()}
        assert chart_data(browser, "lifecycle-chart") == [[stages[stage] for stage in STAGES]]
        screenshot(browser, "home")

        # Find a member: status, tags and the timeline of what its events did.
        open_page(browser, "Members")
        set_value(browser, shown(browser, "#member-id"), "m-00")
        browser.find_element(By.CSS_SELECTOR, "#member-search button").click()
        assert shown(browser, "#member-facts [data-fact=net_spend]").text == "129.00"
        assert text_of(browser, "#member-facts [data-fact=paid_orders]") == "1"
        assert "Member m-00" in text_of(browser, "#member-title")
        chips = [chip.text for chip in browser.find_elements(By.CSS_SELECTOR, "#member-tags .chip")]
        assert "lifecycle.stage_new" in chips
        kinds = {
            row.get_attribute("data-kind") for row in browser.find_elements(By.CSS_SELECTOR, "#member-timeline tr")
        }
        assert "action" in kinds  # the first payment's care message at least
        screenshot(browser, "member")
        set_value(browser, browser.find_element(By.ID, "member-id"), "nobody")
        browser.find_element(By.CSS_SELECTOR, "#member-search button").click()
        assert "member_not_found" in shown(browser, "#member-error").text

        # Build a segment with the form: the size is counted as the conditions change, then saved.
        open_page(browser, "Segments")
        set_value(browser, shown(browser, "#segment-name"), "App members")
        browser.find_element(By.ID, "add-field").click()
        condition = shown(browser, "#segment-conditions li.condition")
        Select(condition.find_element(By.CSS_SELECTOR, ".subject")).select_by_value("channel")
        Select(condition.find_element(By.CSS_SELECTOR, ".op")).select_by_value("=")
        set_value(browser, condition.find_element(By.CSS_SELECTOR, ".value"), "app")
        wait_for(browser, lambda d: text_of(d, "#segment-size") == str(len(app_members)))
        browser.find_element(By.ID, "add-tag").click()
        tag_row = browser.find_elements(By.CSS_SELECTOR, "#segment-conditions li.condition")[1]
        Select(tag_row.find_element(By.CSS_SELECTOR, ".subject")).select_by_value("lifecycle.stage_new")
        wait_for(browser, lambda d: text_of(d, "#segment-size") == "1")
        tag_row.find_element(By.CSS_SELECTOR, ".negate").click()  # everyone on the app but the one buyer
        wait_for(browser, lambda d: text_of(d, "#segment-size") == str(len(app_members) - 1))
        screenshot(browser, "segments")
        browser.find_element(By.ID, "segment-save").click()
        shown(browser, "#segment-list li[aria-current]")
        saved = (await client.get(f"/v1/shops/{SHOP}/segments")).json()["items"]
        assert [segment["name"] for segment in saved] == ["App members"]
        segment_id = saved[0]["segment_id"]
        assert (await client.get(f"/v1/shops/{SHOP}/segments/{segment_id}")).json()["definition"] == {
            "all": [{"field": "channel", "op": "=", "value": "app"}, {"not": {"tag": "lifecycle.stage_new"}}]
        }

        # Plan a campaign on it: a mistake is shown on its field, then the forecast, then launch.
        open_page(browser, "Campaigns")
        set_value(browser, shown(browser, "#campaign-name"), "Spring wake-up")
        Select(browser.find_element(By.ID, "campaign-segment")).select_by_value(segment_id)
        set_value(browser, browser.find_element(By.ID, "campaign-holdout"), "25")
        strategy = browser.find_element(By.CSS_SELECTOR, "#strategy-rows tbody tr")
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".code"), "coupon")
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".weight"), "0")
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".template"), "spring_coupon")
        Select(strategy.find_element(By.CSS_SELECTOR, ".kind")).select_by_value("coupon")
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".value"), "10.00")
        wave = browser.find_element(By.CSS_SELECTOR, "#wave-rows tbody tr .at")
        set_value(browser, wave, wave_at.strftime("%Y-%m-%dT%H:%M"))
        browser.find_element(By.ID, "campaign-forecast").click()
        assert "body.strategies[0].weight" in shown(browser, "#campaign-error").text
        assert strategy.find_element(By.CSS_SELECTOR, ".weight").get_attribute("aria-invalid") == "true"
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".weight"), "1")
        variables = strategy.find_element(By.CSS_SELECTOR, ".variables")
        set_value(browser, variables, '{"headline": "春天见"')  # a typing mistake, caught before sending
        browser.find_element(By.ID, "campaign-forecast").click()
        wait_for(browser, lambda d: "body.strategies[0].variables" in text_of(d, "#campaign-error"))
        assert variables.get_attribute("aria-invalid") == "true"
        set_value(browser, variables, '{"headline": "春天见"}')
        browser.find_element(By.ID, "campaign-forecast").click()
        assert shown(browser, "#forecast-facts [data-fact=audience]").text == str(len(app_members) - 1)
        screenshot(browser, "campaign-new")
        go(browser, browser.find_element(By.ID, "campaign-create").click)
        campaign_id = browser.current_url.rsplit("/", 1)[1]
        assert text_of(browser, "#campaign-facts [data-fact=status]") == "Scheduled"
        created = (await client.get(f"/v1/shops/{SHOP}/campaigns/{campaign_id}")).json()
        assert created["strategies"][0]["variables"] == {"headline": "春天见"}
        assert created["strategies"][0]["incentive"]["value"] == "10.00"
        assert (created["holdout_percent"], created["segment_id"]) == (25, segment_id)

        # Run the scheduler up to the wave, as an operator does from the command line.
        run = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.ops", "scheduler", "run", "--until", wave_at.isoformat(), "--json"],
            cwd=ROOT,
            env={**api.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["waves_run"] == 1

        # Some of the members buy within the attribution window: the strategy's and one held out.
        audience = [m for m in app_members if m != "m-00"]
        plan = parse_plan(
            {
                "name": "Spring wake-up",
                "definition": {"all": []},
                "strategies": [{"code": "coupon", "weight": "1", "template": "spring_coupon"}],
                "waves": [{"at": wave_at.isoformat()}],
            }
        )
        group = {m: assign(campaign_id, m, plan.strategies, 25) for m in audience}
        treated = [m for m in audience if group[m] == "coupon"]
        held = [m for m in audience if group[m] == HOLDOUT]
        assert len(treated) >= 3, "the campaign id split the audience too unevenly for this test"
        assert held, "the campaign id held no member out"
        buyers = [*treated[:3], held[0]]
        orders = [paid(m, f"o-{m}", wave_at + (i + 1) * DAY, "88.00") for i, m in enumerate(buyers)]
        await produce(topics, orders)
        await wait_until_processed(engine, len(events) + len(orders), timeout_s=60)

        # The report: the chart draws the conversion the orders made, and the interval.
        go(browser, browser.refresh)
        assert text_of(browser, "#campaign-facts [data-fact=status]") == "Completed"
        expected_rates = [percent(round(3 / len(treated), 4)), percent(round(1 / len(held), 4))]
        assert chart_data(browser, "conversion-chart") == [expected_rates]
        interval = newcombe_difference(3, len(treated), 1, len(held))
        assert interval is not None
        uplift = chart_data(browser, "uplift-chart")
        assert uplift[1] == [percent(round(interval.estimate, 4))]
        assert uplift[0] == [[percent(round(interval.low, 4)), percent(round(interval.high, 4))]]
        assert chart_data(browser, "waves-chart") == [[len(treated)]]
        assert drawn_pixels(browser, "conversion-chart") > 0
        row = browser.find_element(By.CSS_SELECTOR, "#report-table tr[data-group=coupon]")
        assert [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")][:4] == [
            str(len(treated)),
            "0",  # nothing sent: no notifier runs in this test
            "0",
            "3",
        ]
        screenshot(browser, "campaign-report")

        # A campaign planned for later is cancelled from its page, after the operator confirms.
        open_page(browser, "Campaigns")
        set_value(browser, shown(browser, "#campaign-name"), "Double 11 preview")
        Select(browser.find_element(By.ID, "campaign-segment")).select_by_value(segment_id)
        strategy = browser.find_element(By.CSS_SELECTOR, "#strategy-rows tbody tr")
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".code"), "plain")
        set_value(browser, strategy.find_element(By.CSS_SELECTOR, ".template"), "double_11")
        later = (now + 30 * DAY).strftime("%Y-%m-%dT%H:%M")
        set_value(browser, browser.find_element(By.CSS_SELECTOR, "#wave-rows tbody tr .at"), later)
        go(browser, browser.find_element(By.ID, "campaign-create").click)
        assert text_of(browser, "#campaign-facts [data-fact=status]") == "Scheduled"
        browser.find_element(By.ID, "campaign-cancel").click()
        wait_for(browser, lambda d: d.switch_to.alert).accept()
        wait_for(browser, lambda d: text_of(d, "#campaign-facts [data-fact=status]") == "Cancelled")
        assert not browser.find_element(By.ID, "campaign-cancel").is_displayed()
        statuses = {
            item["name"]: item["status"] for item in (await client.get(f"/v1/shops/{SHOP}/campaigns")).json()["items"]
        }
        assert statuses == {"Spring wake-up": "completed", "Double 11 preview": "cancelled"}

        # The incentives page draws its report too (the first purchase's gift decided above).
        open_page(browser, "Incentives")
        shown(browser, "#incentives-table tbody tr")
        rules = [
            row.get_attribute("data-rule")
            for row in browser.find_elements(By.CSS_SELECTOR, "#incentives-table tr[data-rule]")
        ]
        report = (await client.get(f"/v1/shops/{SHOP}/incentives/report")).json()["items"]
        assert rules == [item["rule"] for item in report]
        assert "first_purchase_gift" in rules  # m-00's and the four buyers' first purchases
        drawn_uplift = chart_data(browser, "incentives-uplift-chart")[1]
        assert drawn_uplift == [percent(item["uplift"]["rate_diff"]) for item in report]
        screenshot(browser, "incentives")

        # The playbook: a misspelt key is shown on its line; the corrected document is stored.
        open_page(browser, "Playbook")
        editor = shown(browser, "#playbook-overrides")
        set_value(browser, editor, '{"rules": {"first_purchase_gift": {"holdout_percnt": 10}}}')
        browser.find_element(By.ID, "playbook-save").click()
        problem = shown(browser, "#playbook-problems li[data-path]")
        assert problem.get_attribute("data-path") == "rules.first_purchase_gift.holdout_percnt"
        assert problem.get_attribute("data-line") == "4"  # the key's line once the document is laid out
        assert browser.find_elements(By.CSS_SELECTOR, "#playbook-gutter li")[3].get_attribute("class") == "marked"
        screenshot(browser, "playbook")
        set_value(browser, editor, '{"rules": {"first_purchase_gift": {"holdout_percent": 10}}}')
        browser.find_element(By.ID, "playbook-save").click()
        shown(browser, "#playbook-versions li[data-version='1']")
        stored = (await client.get(f"/v1/shops/{SHOP}/playbook")).json()
        assert stored["version"] == 1
        assert stored["playbook"]["rules"]["first_purchase_gift"]["holdout_percent"] == 10

        # The same console in Chinese.
        go(browser, lambda: browser.get(f"{base}/console/?lang=zh"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "今日概览"
        assert text_of(browser, "#session-scope") == "完全权限"
        screenshot(browser, "home-zh")
        go(browser, lambda: browser.get(f"{base}/console/?lang=en"))

        # A read-only token sees everything and cannot save.
        go(browser, browser.find_element(By.ID, "sign-out").click)
        assert "/console/signin" in browser.current_url
        sign_in(browser, base, READ_TOKEN)
        assert text_of(browser, "#session-scope") == "Read only"
        go(browser, lambda: browser.get(f"{base}/console/segments"))
        shown(browser, "#segment-list li[data-segment-id]").find_element(By.TAG_NAME, "button").click()
        # The four buyers are new customers now, so the segment leaves them out too.
        wait_for(browser, lambda d: text_of(d, "#segment-size") == str(len(app_members) - 1 - len(buyers)))
        save = browser.find_element(By.ID, "segment-save")
        assert not save.is_enabled()
        set_value(browser, browser.find_element(By.ID, "segment-name"), "Renamed by a reader")
        browser.execute_script("document.getElementById('segment-save').click()")
        go(browser, lambda: browser.get(f"{base}/console/campaigns"))
        shown(browser, "#campaign-list tr[data-campaign-id]")
        assert not browser.find_element(By.ID, "campaign-create").is_enabled()
        go(browser, lambda: browser.get(f"{base}/console/playbook"))
        shown(browser, "#playbook-versions li[data-version]")
        assert not browser.find_element(By.ID, "playbook-save").is_enabled()
        segment = (await client.get(f"/v1/shops/{SHOP}/segments/{segment_id}")).json()
        assert (segment["name"], segment["latest_version"]) == ("App members", 1)
