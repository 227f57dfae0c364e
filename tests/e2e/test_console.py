"""The ops console in a real browser (Playwright driving Debian's Chromium, tools/browser/install.sh).

An admin logs in at the gateway's ``/console``; with member frozen and reservations failing, the
page shows room's breaker to member open; a poison message shows up as a dead letter with its
error, and the redrive button sends it back. Screenshots land in ``<run dir>/results/console``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from playwright.sync_api import Page, expect, sync_playwright

from common.messaging.envelope import Envelope, utc_now_iso
from common.paths import run_dir
from stack.runner import Stack

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Stays, User, eventually

CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright's own download can't work here
SHOWN_WITHIN_MS = 60_000  # generous: the machine is small and loaded
RESERVATIONS = "room.reservations"
# Room's breaker opens at half its calls failing once its 10 s window holds 10 calls; a call to a
# frozen member takes seconds (timeouts, retries), so several callers at once fill the window.
CALLERS = 8


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = run_dir() / "results" / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def console(gateway: str, shots: Path) -> Iterator[Page]:
    """The console page, logged in as the seeded admin."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{gateway}/console")
            page.fill("#email", ADMIN_EMAIL)
            page.fill("#password", ADMIN_PASSWORD)
            page.click("#login-button")
            expect(page.locator("#console")).to_be_visible(timeout=SHOWN_WITHIN_MS)
            expect(page.locator('[data-service="member"] [data-ready="member"]').first).to_have_text(
                "ready", timeout=SHOWN_WITHIN_MS
            )
            page.screenshot(path=shots / "overview.png", full_page=True)
            yield page
        finally:
            browser.close()


def _record(shots: Path, name: str, value: float) -> None:
    path = shots / "timings.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**found, name: round(value, 2)}, indent=2) + "\n")


def test_a_frozen_member_shows_as_rooms_open_breaker(
    console: Page,
    client: httpx.Client,
    stack: Stack,
    new_member: Callable[..., User],
    stays: Stays,
    shots: Path,
) -> None:
    user = new_member("console")
    check_in, check_out = stays.take(1)
    stay = {"room_id": "r101", "check_in": check_in, "check_out": check_out}
    pid = stack.pid("member")
    assert pid is not None
    done = threading.Event()

    def reserve_until_done() -> None:  # each fails while member is frozen: strikes on room's breaker
        while not done.is_set():
            client.post("/api/v1/reservations", headers=user.headers(), json=stay)

    os.killpg(pid, signal.SIGSTOP)  # the whole process group: uvicorn and its threads
    frozen = time.monotonic()
    drivers = [threading.Thread(target=reserve_until_done, daemon=True) for _ in range(CALLERS)]
    for driver in drivers:
        driver.start()
    try:
        expect(console.locator('[data-breaker="room/member"]').first).to_have_text(
            "open", timeout=SHOWN_WITHIN_MS
        )
        _record(shots, "breaker_open_shown_after_freeze_s", time.monotonic() - frozen)
        expect(console.locator('[data-service="member"] [data-ready="member"]').first).to_have_text(
            "down", timeout=SHOWN_WITHIN_MS
        )
        console.screenshot(path=shots / "breaker-open.png", full_page=True)
    finally:
        done.set()
        os.killpg(pid, signal.SIGCONT)
        for driver in drivers:
            driver.join(timeout=60)

    def reserved() -> httpx.Response | None:
        response = client.post("/api/v1/reservations", headers=user.headers("after-the-thaw"), json=stay)
        return response if response.status_code == 201 else None

    eventually(reserved, "a reservation once member answers again", within=60, interval=0.5)
    expect(console.locator('[data-service="member"] [data-ready="member"]').first).to_have_text(
        "ready", timeout=SHOWN_WITHIN_MS
    )


def test_a_poison_message_shows_as_a_dead_letter_and_its_redrive_button_sends_it_back(
    console: Page, stack: Stack, shots: Path
) -> None:
    event_id = str(uuid.uuid4())
    # A schema fingerprint no registry knows: every group parks it at once (not transient).
    envelope = Envelope(event_id, "ReservationCreated", 1, "0" * 16, utc_now_iso(), "console-test")
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    try:
        producer.send(
            RESERVATIONS, key=f"console-{event_id}".encode(), value=b"poison", headers=envelope.to_headers()
        ).get(timeout=30)
    finally:
        producer.close()
    published = time.monotonic()

    row = console.locator(f'#dead-letters tr[data-event-id="{event_id}"]').first
    expect(row).to_be_visible(timeout=SHOWN_WITHIN_MS)
    _record(shots, "dead_letter_shown_after_publish_s", time.monotonic() - published)
    expect(row.locator("td.errors")).not_to_be_empty()
    expect(row.locator("td.state")).to_have_text("pending")
    letter = row.get_attribute("data-letter")
    assert letter, "a letter row names its letter"
    console.screenshot(path=shots / "dead-letter.png", full_page=True)

    redrive_clicked = time.monotonic()
    row.locator("button.redrive").click()
    same = console.locator(f'#dead-letters tr[data-letter="{letter}"]')
    expect(same.locator("td.state")).to_contain_text("redriven", timeout=SHOWN_WITHIN_MS)
    expect(same.locator("button.redrive")).to_have_count(0)
    _record(shots, "redriven_shown_after_click_s", time.monotonic() - redrive_clicked)
    console.screenshot(path=shots / "redriven.png", full_page=True)
