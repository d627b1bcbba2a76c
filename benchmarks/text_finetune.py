"""Fine-tune text models on Debian's fortunes (5 categories) and print a table: minilm-l6 full vs
LoRA, text-tiny from scratch and a TF-IDF + logistic-regression baseline (scikit-learn): test accuracy and macro F1, wall time, tokens/s, MFU, peak memory
and trainable parameters.

Each row trains in its own process, so its peak RSS (getrusage) is its own. The recipe is each
model's default (dcloop.train's text recipes) unless flags override it; --train-limit keeps the
a seeded random sample of N train texts to fit a short run.

Usage: .venv/bin/python benchmarks/text_finetune.py [--epochs 3] [--max-length 128] [--train-limit 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS = {
    "minilm-l6 full": ("minilm-l6", "full"),
    "minilm-l6 lora": ("minilm-l6", "lora"),
    "text-tiny": ("text-tiny", "full"),
    "tfidf+logreg": ("", ""),
}


def baseline_row(name: str, data: object, args: argparse.Namespace) -> dict[str, object]:
    """TF-IDF of word 1-2 grams + multinomial logistic regression on the same train and test texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    x_train, y_train = data.arrays("train")  # type: ignore[attr-defined]
    x_test, y_test = data.arrays("test")  # type: ignore[attr-defined]
    start = time.perf_counter()
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000),
    )
    pipeline.fit(list(x_train), y_train)
    wall = time.perf_counter() - start
    predicted = pipeline.predict(list(x_test))
    params = pipeline[-1].coef_.size + pipeline[-1].intercept_.size
    return {
        "row": name,
        "epochs": 0,
        "train_texts": len(x_train),
        "lr": float("nan"),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "wall_s": wall,
        "train_s": wall,
        "tokens_per_s": float("nan"),
        "mfu": float("nan"),
        "plan_wall_s": float("nan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": int(params),
        "trainable_params": int(params),
    }


def run_row(name: str, root: Path, dataset_id: str, args: argparse.Namespace) -> dict[str, object]:
    """Train one row in this process and return its figures."""
    import torch

    from dcloop.config import TrainConfig
    from dcloop.data import load_dataset
    from dcloop.train._loop import fit_model, seed_everything
    from dcloop.train._text_recipe import resolve_recipe
    from dcloop.train._throughput import text_fit_figures
    from dcloop.train._trained import build_model, build_tokenizer, holdout_metrics, prepare_model
    from dcloop.workspace import open_workspace

    model_name, finetune = ROWS[name]
    data = load_dataset(open_workspace(root), dataset_id)
    if args.train_limit:  # a seeded sample: the split is in stored order, which is by class
        train = np.random.default_rng(0).permutation(data.splits["train"])[: args.train_limit]
        data = dataclasses.replace(data, splits={**data.splits, "train": np.sort(train)})
    if not model_name:
        return baseline_row(name, data, args)
    overrides = {
        "model": model_name,
        "finetune": finetune,
        "threads": args.threads,
        "max_length": args.max_length,
    }
    if args.epochs:
        overrides["epochs"] = args.epochs
    recipe = resolve_recipe(TrainConfig(**overrides), "text")
    start = time.perf_counter()
    seed_everything(recipe.seed)
    tokenizer = build_tokenizer(recipe, data)
    model = prepare_model(build_model(recipe, data, tokenizer), recipe)
    result = fit_model(model, data, recipe, tokenizer=tokenizer, progress_label=name)
    train_wall = time.perf_counter() - start
    from dcloop.train._batches import token_arrays

    _, lengths = token_arrays(data, tokenizer, recipe.max_length)
    epoch_tokens = int(lengths[data.splits["train"]].sum())
    figures = text_fit_figures(
        result.model,
        epoch_tokens,
        len(data.splits["train"]),
        result.images_per_s,
        len(result.history),
        recipe.threads or torch.get_num_threads(),
        finetune == "lora",
    )
    test = holdout_metrics(result.model, data, tokenizer, recipe.max_length)
    return {
        "row": name,
        "epochs": len(result.history),
        "train_texts": len(data.splits["train"]),
        "lr": recipe.lr,
        "accuracy": test["accuracy"],
        "f1_macro": test["f1_macro"],
        "wall_s": train_wall,
        "train_s": result.train_s,
        "tokens_per_s": figures["tokens_per_s"],
        "mfu": figures["mfu"],
        "plan_wall_s": figures["plan_wall_s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": figures["params"],
        "trainable_params": figures["trainable_params"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--epochs", type=int, default=0, help="0: each model's recipe (minilm-l6 3, text-tiny 10)"
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-limit", type=int, default=0, help="keep this many train texts (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated: {', '.join(ROWS)}")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:  # a child: one row, its figures as JSON on the last line
        print(json.dumps(run_row(args.row, Path(args.root), args.dataset, args)))
        return
    from dcloop.data import import_source
    from dcloop.workspace import init_workspace

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = init_workspace(Path(tmp) / "ws")
        record = import_source(workspace, "fortunes")
        for name in args.rows.split(","):
            child = [
                sys.executable,
                __file__,
                "--row",
                name,
                "--root",
                str(workspace.root),
                "--dataset",
                record.id,
            ]
            child += ["--epochs", str(args.epochs), "--max-length", str(args.max_length)]
            child += ["--train-limit", str(args.train_limit), "--threads", str(args.threads)]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"fortunes {record.short_id}: 5 classes, max_length {args.max_length}, {args.threads} threads")
    header = [
        "row",
        "epochs",
        "train",
        "lr",
        "acc",
        "F1 mac",
        "wall s",
        "plan s",
        "tok/s",
        "MFU",
        "RSS MB",
        "trainable",
    ]
    print("  ".join(f"{h:>10}" for h in header))
    for r in results:
        cells = [
            r["row"],
            r["epochs"],
            r["train_texts"],
            f"{r['lr']:.0e}",
            f"{r['accuracy']:.3f}",
            f"{r['f1_macro']:.3f}",
            f"{r['wall_s']:.0f}",
            f"{r['plan_wall_s']:.0f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['mfu']:.1%}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['trainable_params']:,} / {r['params']:,}",
        ]
        print("  ".join(f"{c!s:>10}" for c in cells))


if __name__ == "__main__":
    main()
