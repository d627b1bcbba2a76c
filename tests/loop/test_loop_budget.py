"""The controller's daily budgets add up what its turns recorded: CPU time (a child process's too) and
energy; a turn over the energy budget is not started, and the decision says which budget held it."""

from __future__ import annotations

import subprocess
import sys
import time

from loopkit import set_config

from dcloop.loop import list_turns
from dcloop.loop._controller import history, request_turn, watch
from dcloop.store import controller as q

BURN = """
import time
start = time.process_time()
while time.process_time() - start < 1.0:
    pass
print(time.process_time())
"""


def test_a_child_process_cpu_time_is_counted_and_the_energy_budget_holds_the_next_turn(champion_ws) -> None:
    child: list[float] = []

    def traffic(ws, model_ref):  # the feedback step trains nothing here: a child burns 1 s of CPU instead
        done = subprocess.run([sys.executable, "-c", BURN], capture_output=True, text=True, check=True)
        child.append(float(done.stdout))
        return {}

    request_turn(champion_ws, "count the child")
    before = time.process_time()
    resumed, finished = watch(champion_ws, polls=1, traffic=traffic)
    own = time.process_time() - before  # this process's CPU over the whole look, the turn's and more
    assert (resumed.outcome, finished.outcome) == ("resumed", "finished") and child[0] >= 1.0
    assert finished.figures["cpu_s"] >= own + child[0] / 2, (finished.figures, own, child)
    spent = finished.figures["energy_kwh"]
    assert spent > 0 and finished.figures["energy_source"]
    [turn_end] = [d for d in history(champion_ws) if d.outcome == "finished"]
    assert q.energy_kwh_since(champion_ws.store, "animals", turn_end.at) == spent
    assert q.cpu_hours_since(champion_ws.store, "animals", turn_end.at) == finished.figures["cpu_s"] / 3600

    ws = set_config(champion_ws, "loop", policy={"max_kwh_per_day": spent / 2, "cooldown_s": 0.0})
    request_turn(ws, "one more")
    [held] = watch(ws, polls=1)
    assert (held.trigger, held.outcome) == ("request", "not_started")
    assert held.reason.startswith("not started: budget: turns took") and "max_kwh_per_day" in held.reason
    assert len(list_turns(ws)) == 1, "no second turn over the energy budget"
