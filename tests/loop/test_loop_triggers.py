"""Triggers and policies of the loop controller, as pure functions of what it observed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dcloop.loop._triggers import Firing, Observation, cron_due, fired, held_back, in_quiet_hours

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
seconds = st.integers(0, 3 * 86400).map(float)  # whole seconds: timedelta keeps microseconds only
times = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))
hhmm = st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda t: f"{t[0]:02d}:{t[1]:02d}")


def kinds(firings: list[Firing]) -> list[str]:
    return [f.trigger for f in firings]


@given(new=st.integers(0, 1000), needed=st.integers(0, 1000))
def test_the_label_trigger_fires_at_its_threshold_and_never_when_off(new: int, needed: int) -> None:
    obs = Observation(now=T0, since=T0, new_labels=new)
    assert ("labels" in kinds(fired(obs, min_new_labels=needed))) == (needed > 0 and new >= needed)


@given(held=seconds, needed=seconds)
def test_an_alert_fires_once_it_has_held_long_enough(held: float, needed: float) -> None:
    obs = Observation(now=T0, since=T0, alerts={"low_accuracy:animals@1": T0 - timedelta(seconds=held)})
    firings = fired(obs, alert_held_s=needed)
    assert ("alert" in kinds(firings)) == (held >= needed)
    assert kinds(fired(obs)) == [], "alerts start nothing unless loop.triggers.alert_held_s is set"


@given(elapsed=seconds, interval=st.floats(min_value=1, max_value=86400))
def test_the_interval_counts_from_the_last_turn_start(elapsed: float, interval: float) -> None:
    obs = Observation(now=T0, since=T0, last_start=T0 - timedelta(seconds=elapsed), last_end=T0)
    assert ("interval" in kinds(fired(obs, interval_s=interval))) == (elapsed >= interval)
    assert kinds(fired(Observation(now=T0, since=T0), interval_s=interval)) == ["interval"]


def test_a_cron_time_fires_once_between_the_last_turn_and_now() -> None:
    last = datetime(2026, 6, 1, 2, 59, tzinfo=UTC)
    assert cron_due("0 3 * * *", last, datetime(2026, 6, 1, 2, 59, 59, tzinfo=UTC)) is None
    assert cron_due("0 3 * * *", last, datetime(2026, 6, 1, 3, 0, tzinfo=UTC)) == last.replace(
        hour=3, minute=0
    )
    turn_at_three = datetime(2026, 6, 1, 3, 0, 5, tzinfo=UTC)
    assert cron_due("0 3 * * *", turn_at_three, datetime(2026, 6, 2, 2, 0, tzinfo=UTC)) is None
    obs = Observation(now=datetime(2026, 6, 1, 3, 1, tzinfo=UTC), since=last)
    [firing] = fired(obs, cron="0 3 * * *")
    assert firing.trigger == "cron" and "03:00" in firing.reason


@given(a=hhmm, b=hhmm, now=times)
def test_quiet_hours_and_their_complement_split_the_day(a: str, b: str, now: datetime) -> None:
    if a != b:
        assert in_quiet_hours(now, f"{a}-{b}") != in_quiet_hours(now, f"{b}-{a}")
    else:
        assert not in_quiet_hours(now, f"{a}-{b}"), "an empty window holds nothing back"


def test_quiet_hours_span_midnight() -> None:
    assert in_quiet_hours(T0.replace(hour=23), "22:00-06:00")
    assert in_quiet_hours(T0.replace(hour=5, minute=59), "22:00-06:00")
    assert not in_quiet_hours(T0.replace(hour=6), "22:00-06:00")


@given(waited=seconds, cooldown=seconds, trigger=st.sampled_from(["labels", "alert", "cron", "request"]))
def test_the_cooldown_holds_back_every_trigger_but_a_request(
    waited: float, cooldown: float, trigger: str
) -> None:
    end = T0 - timedelta(seconds=waited)
    obs = Observation(now=T0, since=T0, last_start=end - timedelta(hours=1), last_end=end)
    reason = held_back(obs, Firing(trigger, "x"), cooldown_s=cooldown)
    assert (reason is not None) == (trigger != "request" and waited < cooldown)
    if reason is not None:
        assert reason.startswith("cooldown:") and f"of {cooldown:g} s" in reason


@given(today=st.integers(0, 50), budget=st.integers(1, 50), trigger=st.sampled_from(["labels", "request"]))
def test_the_daily_budget_binds_everyone(today: int, budget: int, trigger: str) -> None:
    obs = Observation(now=T0, since=T0, turns_today=today)
    reason = held_back(obs, Firing(trigger, "x"), max_turns_per_day=budget)
    assert (reason is not None) == (today >= budget)
    if reason is not None:
        assert reason.startswith("budget:")


def test_a_request_comes_first_and_carries_its_reason() -> None:
    obs = Observation(now=T0, since=T0, new_labels=100, requests=["new labels from the night shift", "b"])
    firings = fired(obs, min_new_labels=10)
    assert kinds(firings) == ["request", "labels"]
    assert firings[0].figures == {"reason": "new labels from the night shift"}


def test_a_running_turn_holds_back_a_trigger() -> None:
    obs = Observation(now=T0, since=T0, last_start=T0 - timedelta(minutes=5))
    assert held_back(obs, Firing("labels", "x")) == "a turn is still running"


@given(spent=st.floats(0, 10), budget=st.floats(0.01, 10), trigger=st.sampled_from(["alert", "request"]))
def test_the_cpu_budget_binds_everyone(spent: float, budget: float, trigger: str) -> None:
    obs = Observation(now=T0, since=T0, cpu_hours_today=spent)
    reason = held_back(obs, Firing(trigger, "x"), max_cpu_hours_per_day=budget)
    assert (reason is not None) == (spent >= budget)
    if reason is not None:
        assert reason.startswith("budget: turns took") and "CPU-hours" in reason


@given(spent=st.floats(0, 100), budget=st.floats(0.001, 100), trigger=st.sampled_from(["alert", "request"]))
def test_the_energy_budget_binds_everyone(spent: float, budget: float, trigger: str) -> None:
    obs = Observation(now=T0, since=T0, cpu_hours_today=0.0, kwh_today=spent)
    reason = held_back(obs, Firing(trigger, "x"), max_cpu_hours_per_day=1.0, max_kwh_per_day=budget)
    assert (reason is not None) == (spent >= budget)
    if reason is not None:
        assert reason.startswith("budget: turns took") and "loop.policy.max_kwh_per_day" in reason
