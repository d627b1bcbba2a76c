"""Every dashboard page in a real browser (the system Chromium): the key figures shown equal the
store's, the plots rendered as SVG, no console errors and no failed requests; promote with and
without the token.

``DCLOOP_UI_SCREENSHOTS=docs/img`` also saves each page at 1280 px wide (the README's pictures).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
from uikit import LABELLED, TOKEN, TRAFFIC

from dcloop.store import datasets, predictions, registry, runs, turns

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("DCLOOP_UI_SCREENSHOTS")


class Watched:
    """A page that records console errors, uncaught exceptions, failed and 4xx/5xx requests."""

    def __init__(self, browser, expect_status: int | None = None) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.expect_status = expect_status
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", self._response)

    def _console(self, message) -> None:
        expected = f"status of {self.expect_status} " if self.expect_status else None
        if message.type == "error" and not (expected and expected in message.text):
            self.problems.append(f"console: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 400 and response.status != self.expect_status:
            self.problems.append(f"{response.status}: {response.url}")

    def open(self, url: str, shot: str | None = None):
        self.page.goto(url, wait_until="networkidle")
        if shot and SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"ui-{shot}.png"), full_page=False)
        return self.page

    def figure(self, key: str) -> str:
        return self.page.locator(f'[data-key="{key}"] .value').first.inner_text()

    def rows(self, table: str) -> list[list[str]]:
        cells = self.page.locator(f'table[data-table="{table}"] tbody tr').all()
        return [[c.inner_text() for c in row.locator("td").all()] for row in cells]

    def close(self) -> None:
        self.page.close()
        assert self.problems == []


def _pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.2f}%"


def test_loop_page_shows_the_stores_figures(browser, dashboard, loop_ws):
    store = loop_ws.store
    w = Watched(browser)
    page = w.open(dashboard + "/", "loop")
    logged = predictions.list_predictions(store, with_inputs=True)
    labelled = [p for p in logged if p.label is not None]
    share = loop_ws.config.gate.feedback_holdout
    held = [
        p
        for p in labelled
        if p.input is not None and predictions.in_holdout(predictions.prediction_pixels(p), share)
    ]
    assert (len(logged), len(labelled)) == (TRAFFIC, LABELLED)
    assert w.figure("predictions") == str(len(logged))
    assert w.figure("labelled") == str(len(labelled))
    assert w.figure("held_out") == str(len(held))
    assert w.figure("turns") == str(len(turns.list_turns(store)))
    pointers = registry.aliases(store, "animals")
    assert w.figure("champion") == f"animals@{pointers['champion']}"
    assert w.figure("challenger") == f"animals@{pointers['challenger']}"
    stages = page.locator("svg g.stage").all()
    assert len(stages) == 9  # every step of the turn, coloured by its state
    done = {s.step for s in turns.list_turns(store)[-1].steps if s.status == "finished"}
    assert page.locator("svg g.stage.done").count() == len(done)
    assert page.locator("svg polyline").count() >= 1  # the timeline of turns
    w.close()


def test_data_page_counts_and_lineage(browser, dashboard, loop_ws):
    w = Watched(browser)
    page = w.open(dashboard + "/data", "data")
    versions = datasets.list_datasets(loop_ws.store)
    assert w.figure("versions") == str(len(versions))
    newest = versions[-1]
    splits = list(newest.counts)
    expected = [[c, *(str(newest.counts[s].get(c, 0)) for s in splits)] for c in newest.classes]
    assert w.rows("class_counts") == expected
    assert page.locator("svg rect.fill").count() == len(newest.classes)  # images per class
    lineage = page.locator('svg[aria-label^="lineage"]')
    nodes = lineage.locator("rect.node").count()
    assert nodes == len(datasets.list_sources(loop_ws.store)) + len(versions) + len(
        runs.list_runs(loop_ws.store)
    ) + len(registry.list_versions(loop_ws.store, "animals"))
    assert lineage.locator("path.edge").count() >= 3  # source -> version -> run -> model
    w.close()


def test_runs_list_detail_and_compare(browser, dashboard, loop_ws):
    found = runs.list_runs(loop_ws.store)
    w = Watched(browser)
    w.open(dashboard + "/runs", "runs")
    assert w.figure("runs") == str(len(found))
    run = found[0]
    page = w.open(f"{dashboard}/runs/{run.id}", "run")
    assert w.figure("accuracy") == _pct(run.metrics["accuracy"])
    assert w.figure("f1_macro") == _pct(run.metrics["f1_macro"])
    k = len(run.metrics["classes"])
    cells = [int(t) for t in page.locator("svg text.cellnum").all_text_contents()]
    assert cells == [n for row in run.metrics["confusion_matrix"] for n in row] and len(cells) == k * k
    assert page.locator("svg polyline").count() >= 2  # loss and score curves
    per_class = w.rows("per_class")
    assert [r[0] for r in per_class] == run.metrics["classes"]
    assert [int(r[4]) for r in per_class] == [v["support"] for v in run.metrics["per_class"].values()]
    w.page.goto(f"{dashboard}/runs", wait_until="networkidle")
    for box in w.page.locator('input[name="ids"]').all()[:2]:
        box.check()
    if len(found) < 2:  # compare the run with itself: the page still lays two columns side by side
        w.page.goto(f"{dashboard}/runs/compare?ids={run.id},{run.id}", wait_until="networkidle")
    else:
        w.page.get_by_role("button", name="compare selected").click()
        w.page.wait_for_load_state("networkidle")
    assert w.figure("compared") == "2"
    w.close()


def test_models_page_registry_and_history(browser, dashboard, loop_ws):
    store = loop_ws.store
    w = Watched(browser)
    page = w.open(dashboard + "/models", "models")
    versions = registry.list_versions(store, "animals")
    assert w.figure("versions") == str(len(versions))
    assert len(w.rows("moves-animals")) == len(registry.alias_moves(store, "animals"))
    shown = {r[0]: r[1] for r in w.rows("versions-animals")}
    pointers = registry.aliases(store, "animals")
    assert {ref for ref, tags in shown.items() if "champion" in tags} == {f"animals@{pointers['champion']}"}
    assert page.locator('svg[aria-label="accuracy against latency"] circle').count() >= 1
    assert page.locator("form.action").count() == 2  # promote and roll back, with the token
    w.close()


def test_monitor_page_live_quality_and_drift(browser, dashboard, loop_ws):
    w = Watched(browser)
    page = w.open(dashboard + "/monitor")
    champion = registry.aliases(loop_ws.store, "animals")["champion"]
    rows = [
        p
        for p in predictions.labelled_predictions(loop_ws.store, model_name="animals", with_inputs=False)
        if p.model_version == champion
    ]
    accuracy = sum(p.label_index == p.pred_index for p in rows) / len(rows)
    assert w.figure("labelled") == str(len(rows))
    assert w.figure("accuracy") == _pct(accuracy)
    assert page.locator('svg[aria-label="accuracy over time"] circle').count() >= 1
    hist = page.locator('svg[aria-label="confidence distribution"] rect.fill')
    assert (
        sum(int(re.search(r": (\d+)", t).group(1)) for t in hist.locator("title").all_text_contents())
        == TRAFFIC
    )
    page.wait_for_selector('table[data-table="drift"]', timeout=180_000)  # drift loads after the page
    features = [r[1] for r in w.rows("drift")]
    assert "PSI mean_intensity" in features
    before = page.locator("#live").get_attribute("data-updated")
    page.wait_for_function("document.querySelector('#live').dataset.updated !== undefined", timeout=30_000)
    assert before is None  # the figures refreshed on their own from /api/monitor
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "ui-monitor.png"))
    w.close()


def _metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_serving_page_reads_the_servers_metrics(browser, dashboard, model_server):
    for _ in range(3):
        httpx.post(f"{model_server}/predict", json={"pixels": [[7] * 28] * 28}).raise_for_status()
    w = Watched(browser)
    page = w.open(dashboard + "/serving")
    page.wait_for_function("document.querySelector('#live').dataset.updated !== undefined", timeout=30_000)
    text = httpx.get(f"{model_server}/metrics").text
    shown = {r[0]: float(r[1]) for r in w.rows("status")}
    assert shown["200"] >= 3 and shown["200"] <= _metric_sum(text, "dcloop_requests_total", status="200")
    assert w.figure("requests_per_s") != "\u2013"  # a rate, from two scrapes
    assert float(w.figure("p95")) > 0
    assert page.locator('svg[aria-label="batch sizes"] rect.fill').count() >= 1
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "ui-serving.png"))
    w.close()


def test_plan_form_answers_as_the_cli(browser, dashboard):
    from typer.testing import CliRunner

    from dcloop.cli import app

    w = Watched(browser)
    page = w.open(dashboard + "/plan")
    form = page.locator("form.plan").first
    form.locator('input[name="preset"]').fill("llama2-70b")
    form.locator('input[name="tokens"]').fill("2T")
    form.locator('input[name="count"]').fill("2048")
    form.get_by_role("button").click()
    page.wait_for_load_state("networkidle")
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "ui-plan.png"))
    shown = dict(tuple(r) for r in w.rows("plan"))
    result = CliRunner().invoke(
        app, ["plan", "train", "--preset", "llama2-70b", "--tokens", "2T", "-n", "2048", "--format", "json"]
    )
    expected = json.loads(result.output)
    keys = (
        "accelerator",
        "count",
        "model_flops",
        "wall_days",
        "accelerator_hours",
        "energy_facility_mwh",
        "co2_t",
        "cost_usd",
    )
    for key in keys:
        value = expected[key]
        assert shown[key] == (f"{value:.4g}" if isinstance(value, float) else str(value)), key
    assert w.figure("wall_days") == f"{expected['wall_days']:.4g}"
    w.close()


def test_promote_needs_the_token(browser, dashboard, readonly_dashboard, loop_ws):
    store = loop_ws.store
    before = registry.aliases(store, "animals")
    moves = len(registry.alias_moves(store, "animals"))
    # read-only: no form, and a crafted POST is refused
    w = Watched(browser)
    page = w.open(readonly_dashboard + "/models")
    assert page.locator("form.action").count() == 0
    answer = page.request.post(
        readonly_dashboard + "/actions/promote", form={"model": "animals", "token": TOKEN}
    )
    assert answer.status == 403
    w.close()
    # the token-enabled dashboard with a wrong token: 403, nothing moved
    w = Watched(browser, expect_status=403)
    page = w.open(dashboard + "/models")
    page.on("dialog", lambda d: d.accept())
    form = page.locator('form.action[action="/actions/promote"]')
    form.locator('input[name="token"]').fill("wrong")
    form.get_by_role("button").click()
    page.wait_for_load_state("networkidle")
    assert "not valid" in page.locator(".error").inner_text()
    assert registry.aliases(store, "animals") == before
    assert len(registry.alias_moves(store, "animals")) == moves
    w.close()
    # confirmation declined: nothing is sent
    w = Watched(browser)
    page = w.open(dashboard + "/models")
    page.on("dialog", lambda d: d.dismiss())
    form = page.locator('form.action[action="/actions/promote"]')
    form.locator('input[name="token"]').fill(TOKEN)
    form.get_by_role("button").click()
    assert registry.aliases(store, "animals") == before
    w.close()
    # with the token, confirmed: the challenger goes through the gate as `dcloop models promote` does
    w = Watched(browser, expect_status=409)
    page = w.open(dashboard + "/models")
    page.on("dialog", lambda d: d.accept())
    form = page.locator('form.action[action="/actions/promote"]')
    form.locator('input[name="token"]').fill(TOKEN)
    form.locator('input[name="reason"]').fill("checked on the dashboard")
    form.get_by_role("button").click()
    page.wait_for_load_state("networkidle")
    after = registry.aliases(store, "animals")
    history = registry.alias_moves(store, "animals")
    if page.locator(".error").count():  # the gate refused: the page says why, nothing moved
        assert "Gate refused" in page.locator(".error").inner_text()
        assert after == before and len(history) == moves
    else:
        assert after["champion"] == before["challenger"]
        assert history[-2].alias == "champion" and history[-2].reason.startswith("checked on the dashboard")
        assert "is now champion" in page.locator(".notice").inner_text()
    w.close()
