"""The admin in a real browser: headless Chromium drives the operator's path end to end.

Needs Debian's ``chromium`` and ``chromium-driver``: ``make test`` installs them when it can
(``.ci/ensure-chromium``: as root, with apt). Without them the test is skipped with a notice,
except under ``CI=true``, where a skipped test would hide a defect and it fails instead.
Screenshots of every step are kept under ``test-artifacts/admin/``; with
``RETRYTASKS_UPDATE_SCREENSHOTS=1`` the list and the dashboard are also copied to
``docs/img/`` for the README.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from django_retrytasks import dashboard
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.models import Worker as WorkerRow
from tests.admin_jobs import make_jobs_in_every_state
from tests.conftest import ROOT, Clock

ARTIFACTS = ROOT / "test-artifacts" / "admin"
DOCS_IMAGES = ROOT / "docs" / "img"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WIDTH = 1600


def find_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing = (
        f"none of {', '.join(names)} is installed: run "
        "`apt-get install -y chromium chromium-driver` (what `make test` does as root)"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must run the browser test, but {missing}", pytrace=False)
    pytest.skip(f"NOTICE: the admin's browser test did not run: {missing}")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = find_binary("chromium", "chromium-browser")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WIDTH},900")
    # An explicit driver path: Selenium Manager then neither looks for nor downloads one.
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=find_binary("chromedriver"))
    )
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the whole page (the window is stretched to the page's height) as a PNG."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(WIDTH, 600)  # the page's height, not the last window's
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(max(int(height) + 120, 600), 4000))
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


def page_text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def messages(driver: WebDriver) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "ul.messagelist li")]


def row_ids(driver: WebDriver) -> set[int]:
    return {
        int(box.get_attribute("value") or 0)
        for box in driver.find_elements(By.CSS_SELECTOR, "input[name=_selected_action]")
    }


@pytest.mark.django_db(transaction=True)
def test_an_operator_retries_a_job_and_reads_a_traceback(
    browser: WebDriver,
    live_server: Any,
    django_user_model: type[User],
    clock: Clock,
    settings: Any,
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    dashboard.clear_choices_cache()
    django_user_model.objects.create_superuser(username="operator", password="s3cret-pass")
    jobs = make_jobs_in_every_state(clock.now)
    WorkerRow.objects.create(
        name="web-1-7f3a", host="web-1", pid=4242, queues=["default", "mail"], concurrency=4
    )
    url = live_server.url

    # Log in; the login page sends us on to the job list.
    browser.get(f"{url}/admin/login/?next=/admin/django_retrytasks/job/")
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys("s3cret-pass")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    assert browser.current_url.endswith("/admin/django_retrytasks/job/")
    browser.find_element(By.ID, "toggle-nav-sidebar").click()  # room for the columns
    text = page_text(browser)
    assert "in 4 min" in text
    assert "ConnectionError mail server said 421, try later" in text
    assert "1 / 4" in text
    assert row_ids(browser) == set(jobs.all())
    shot = screenshot(browser, "1-job-list")

    # Filter the pending retries.
    browser.find_element(By.LINK_TEXT, "Pending retries").click()
    assert "pending_retry=yes" in browser.current_url
    assert row_ids(browser) == {jobs.pending_retry, jobs.jittery}
    screenshot(browser, "2-pending-retries")

    # "Retry now" on one of them.
    browser.find_element(
        By.CSS_SELECTOR, f"input[name=_selected_action][value='{jobs.pending_retry}']"
    ).click()
    Select(browser.find_element(By.NAME, "action")).select_by_visible_text("Retry now")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    assert messages(browser) == [f"Retry now: 1 job will run at once (#{jobs.pending_retry})."]
    retried = Job.objects.get(pk=jobs.pending_retry)
    assert retried.status == JobStatus.TODO
    assert retried.scheduled_at is not None
    assert retried.scheduled_at <= timezone.now()
    assert Job.objects.get(pk=jobs.jittery).scheduled_at > timezone.now()  # type: ignore[operator]
    screenshot(browser, "3-retried")

    # Open a failed job: its traceback is folded, and opens on a click.
    browser.get(f"{url}/admin/django_retrytasks/job/{jobs.failed}/change/")
    traceback = browser.find_element(By.CSS_SELECTOR, "details.rt-traceback")
    pre = traceback.find_element(By.TAG_NAME, "pre")
    assert not pre.is_displayed()
    traceback.find_element(By.TAG_NAME, "summary").click()
    assert pre.is_displayed()
    assert "Traceback (most recent call last)" in pre.text
    assert "ValueError: bad input <script>alert('pwned')</script>" in pre.text  # shown as text
    assert browser.execute_script("return window.pwned === undefined")
    assert '"message": "bad input' in page_text(browser)  # the arguments as JSON
    screenshot(browser, "4-job-with-traceback")

    # The dashboard, from the job list.
    browser.get(f"{url}/admin/django_retrytasks/job/")
    browser.find_element(By.CSS_SELECTOR, ".object-tools a[href$='/job/dashboard/']").click()
    assert browser.current_url.endswith("/admin/django_retrytasks/job/dashboard/")
    text = page_text(browser)
    assert "Pending retries coming due in the next hour (2)" in text
    assert "testproject.demo.admin_tasks.admin_broken" in text
    assert "web-1-7f3a" in text
    assert "alive" in text
    assert browser.find_elements(By.CSS_SELECTOR, "svg.rt-chart rect")
    dashboard_shot = screenshot(browser, "5-dashboard")

    if os.environ.get("RETRYTASKS_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGES / "admin-list.png")
        shutil.copyfile(dashboard_shot, DOCS_IMAGES / "admin-dashboard.png")
