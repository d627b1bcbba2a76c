"""Print the planner's figures against published training runs (accelerator-hours, energy, CO2).

Run: .venv/bin/python benchmarks/plan_validation.py
"""

from __future__ import annotations

from dcloop.plan import validate_published


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(error: float | None) -> str:
    return "-" if error is None else f"{100 * error:+.1f}%"


def main() -> None:
    header = (
        f"{'run':<15}{'hours pub.':>13}{'planned':>13}{'err':>8}{'MWh pub.':>10}{'planned':>10}"
        f"{'err':>8}{'tCO2 pub.':>11}{'planned':>10}{'err':>8}{'MFU*':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in validate_published():
        print(
            f"{r.name:<15}{_num(r.hours_published):>13}{_num(r.hours_planned):>13}{_pct(r.hours_error):>8}"
            f"{_num(r.energy_published_mwh):>10}{_num(r.energy_planned_mwh):>10}{_pct(r.energy_error):>8}"
            f"{_num(r.co2_published_t, 1):>11}{_num(r.co2_planned_t, 1):>10}{_pct(r.co2_error):>8}"
            f"{r.mfu_from_published_hours:>7.2f}"
        )
    print("whole-run hours planned from the stated throughput and goodput; energy and CO2 from the published")
    print("hours with the stated power, PUE and carbon intensity. *steady-state MFU implied by the published")
    print("hours (6ND + attention FLOPs, over the goodput share of them).")


if __name__ == "__main__":
    main()
