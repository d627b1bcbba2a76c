"""Ask `dcloop plan train` plain questions about published training runs and count the answers.

Each question gives only what a reader of the paper knows (parameters, tokens, the accelerator and
sometimes its count, a stated utilization): no layout flags. A question is answered when the command
exits 0 with hours, energy, CO2 and FLOPs. The second table sets the whole-run hours planned from a
stated utilization beside the published ones. Token counts of a few runs are illustrative; the point
is whether the planner answers, not the figure.

Run: .venv/bin/python benchmarks/plan_questions.py   (PYTHONPATH=OTHER/src to ask another checkout)
"""

from __future__ import annotations

import json
import subprocess
import sys

QUESTIONS = {
    "GPT-3 FLOPs": "--params 175B --tokens 300B",
    "GPT-3 on V100": "--params 175B --tokens 300B -a v100-sxm2-32gb --precision fp16 -n 10000",
    "GPT-3 preset": "--preset gpt3-175b --tokens 300B",
    "GPT-3 on TPU v2": "--params 175B --tokens 300B -a tpu-v2",
    "OPT-175B": "--params 175B --tokens 180B -a a100-80gb -n 992",
    "BLOOM": "--params 176B --tokens 366B -a a100-80gb -n 384",
    "BLOOM preset": "--preset bloom-176b --tokens 366B -a a100-80gb -n 384",
    "GShard 600B": "--params 600B --tokens 1T -a tpu-v3 -n 1024",
    "Switch-C 1.6T": "--params 1.6T --tokens 500B -a tpu-v3",
    "LaMDA 137B": "--params 137B --tokens 2.81T -a tpu-v3 -n 1024",
    "Gopher 280B": "--params 280B --tokens 300B -a tpu-v3 -n 4096",
    "Chinchilla 70B": "--params 70B --tokens 1.4T -a tpu-v4",
    "PaLM 540B": "--params 540B --tokens 780B -a tpu-v4 -n 6144",
    "MT-NLG 530B": "--params 530B --tokens 270B -a a100-80gb -n 4480",
    "LLaMA-65B": "--preset llama-65b --tokens 1.4T -a a100-80gb -n 2048",
    "Llama 2 70B": "--preset llama2-70b --tokens 2T -a a100-80gb",
    "Llama 3 70B": "--preset llama3-70b --tokens 15T",
    "Llama 3.1 405B": "--params 405B --tokens 15.6T",
    "Llama 3.1 405B preset": "--preset llama3.1-405b --tokens 15.6T",
    "Llama 3.1 405B at 16K": "--preset llama3.1-405b --tokens 15.6T -n 16384",
    "Falcon 180B": "--params 180B --tokens 3.5T -a a100-40gb -n 4096",
    "DeepSeek-V3 total": "--params 671B --tokens 14.8T -a h800 -n 2048",
    "DeepSeek-V3 MoE": "--params 671B --active-params 37B --tokens 14.8T -a h800 -n 2048",
}

# Published whole-run accelerator-hours against the hours planned from the stated utilization.
WHOLE_RUN = {
    "Llama 3.1 405B": (
        "--preset llama3.1-405b --tokens 15.6T -n 16384 --model-flops-per-s 400T",
        30.84e6,
        "model card; 400 TFLOP/s per GPU, Llama 3 paper Table 4",
    ),
    "BLOOM-176B": (
        "--preset bloom-176b --tokens 366B -a a100-80gb -n 384 --hardware-flops-per-s 150T --recompute full",
        1_082_990,
        "Luccioni et al. 2022; 150 TFLOP/s per GPU with recomputation",
    ),
    "Gopher 280B": (
        "--params 280B --tokens 300B -a tpu-v3 -n 4096 --utilization 0.325",
        4096 * 920,
        "920 hours on 4,096 TPU v3 (Rae et al. 2021); MFU 32.5% (PaLM paper, Table 3)",
    ),
    "PaLM 540B": (
        "--params 540B --tokens 780B -a tpu-v4 -n 6144 --utilization 0.462",
        6144 * 1200 + 3072 * 336,
        "6,144 TPU v4 for 1,200 h + 3,072 for 336 h (Chowdhery et al. 2022); MFU 46.2%",
    ),
}


def ask(args: str) -> tuple[dict | None, str]:
    """Run one `dcloop plan train` question; (its JSON, '') or (None, the first line of its error)."""
    command = [sys.executable, "-c", "from dcloop.cli import main; main()", "plan", "train", *args.split()]
    done = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, check=False)
    if done.returncode:
        return None, (done.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(done.stdout), ""


def main() -> None:
    answered = 0
    print(f"{'question':<24}{'answer':<9}{'acc-hours':>12}{'MWh':>9}{'tCO2':>8}{'days':>9}  fits / why not")
    for name, args in QUESTIONS.items():
        data, error = ask(args)
        if data is None:
            print(f"{name:<24}{'refused':<9}{'':>38}  {error[:110]}")
            continue
        answered += 1
        print(
            f"{name:<24}{'answered':<9}{data['accelerator_hours']:>12,.0f}{data['energy_facility_mwh']:>9,.0f}"
            f"{data['co2_t']:>8,.0f}{data['wall_days']:>9,.1f}  {data['fits']} {str(data.get('fit_hint', ''))[:60]}"
        )
    print(f"answered {answered} of {len(QUESTIONS)}\n")
    print(f"{'run':<16}{'published h':>14}{'steady h':>14}{'whole-run h':>14}{'error':>9}  source")
    for name, (args, published, source) in WHOLE_RUN.items():
        data, error = ask(args)
        if data is None:
            print(f"{name:<16}{published:>14,.0f}  refused: {error[:80]}")
            continue
        steady = data.get("steady_accelerator_hours", data["accelerator_hours"])
        whole = data["accelerator_hours"]
        print(
            f"{name:<16}{published:>14,.0f}{steady:>14,.0f}{whole:>14,.0f}{whole / published - 1:>+9.1%}  {source}"
        )


if __name__ == "__main__":
    main()
