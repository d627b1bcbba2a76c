"""One short training, a pruned fine-tune and a distillation, as `dcloop optimize` runs them, and
the trained model's answer with test-time views (``train.tta``).

Run as a script by ``test_cpu_paths.py`` under emulated CPU code paths (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``) with ``MALLOC_CHECK_=3``; prints one JSON line with what each step resolved
to. The shapes are the ones that crashed oneDNN before: resnet-s at width 8 (a 1x1 stride-2 shortcut
with 8 input channels), channels-last, batches of 25 with a last one of 19, 28x28 images; and the
same trained on smaller images (progressive resizing): the first half at 24x24, and every step of the
pruned fine-tune, the odd batch included, at 20x20 (maps of 10x10 and 5x5).
"""

from __future__ import annotations

import json
import math
import sys


def main(precision: str) -> None:
    import torch

    from dcloop.config import OptimizeConfig, TrainConfig
    from dcloop.optimize._distill import fit_student
    from dcloop.optimize._prune import prune_channels
    from dcloop.train._loop import fit_model, seed_everything
    from dcloop.train._models import create_model
    from dcloop.train._views import with_views

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from conftest import blobs, in_memory

    x, y = blobs(n=240, size=28)  # 144 train images: batches of 25, 25, 25, 25, 25, 19
    data = in_memory(x, y, ["cat", "dog"])
    recipe = TrainConfig(
        model="resnet-s", width=8, epochs=1, batch_size=25, threads=2, precision=precision, channels_last=True
    )
    cfg = OptimizeConfig()
    seed_everything(0)
    trained = fit_model(create_model("resnet-s", 1, 2, 28, width=8), data, recipe, progress_label="train")
    pruned = prune_channels(
        trained.model, data.image_shape, cfg.prune_flops, cfg.prune_norm, cfg.prune_round_to
    )
    small = recipe.model_copy(update={"resize_share": 0.9, "resize_scale": 0.72})  # 20x20 for all 6 steps
    tuned = fit_model(pruned.model, data, small, progress_label="fine-tune pruned")
    student = create_model(cfg.student, 1, 2, 28, width=cfg.student_width)
    distilled = fit_student(student, trained.model, data, recipe, cfg.temperature, cfg.alpha)
    losses = [r.history[-1]["train_loss"] for r in (trained, tuned, distilled)]
    views = with_views(trained.model, "flip-shift").eval()  # test-time views: pads, slices, one batch
    images = torch.from_numpy(x[:19]).float() / 255  # 19 images: 190 views in one odd-sized batch
    with torch.no_grad():
        answer, mirrored = views(images), views(images.flip(-1))
    print(
        json.dumps(
            {
                "precision": trained.precision,
                "finite": all(math.isfinite(v) for v in losses) and bool(torch.isfinite(answer).all()),
                "views_mirror_diff": float((answer - mirrored).abs().max()),
                "pruned_channels": sorted(
                    {m.in_channels for m in tuned.model.modules() if hasattr(m, "in_channels")}
                ),
                "capability": torch.backends.cpu.get_cpu_capability(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
