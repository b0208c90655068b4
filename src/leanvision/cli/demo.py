"""`leanvision demo`: the README's main job on built-in synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import out, progress_bar
from leanvision.core import DataError, Task


def demo(
    out_dir: Path = typer.Option(Path("leanvision-demo"), "--out", help="Working directory for the demo."),
    slide_size: int = typer.Option(12000, "--slide-size", help="Side of the synthetic slide in pixels."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Synthesize a cytology detection set with one large slide, check it, print its stats."""
    from leanvision.data.check import check
    from leanvision.data.stats import dataset_stats
    from leanvision.data.synth import synthesize

    data_dir = out_dir / "data"
    with progress_bar("synthesizing cytology set") as update:
        synthesize(Task.DETECT, data_dir, seed=seed, slides=1, slide_size=slide_size,
                   progress=lambda stage, done, total: update(done, total, stage))
    with progress_bar("checking") as update:
        reports = check(data_dir, progress=update)
    problems = sum(len(r.issues) for r in reports)
    if problems:
        raise DataError(f"the synthetic set has {problems} problems (run 'leanvision data check')", path=data_dir)
    stats = dataset_stats(data_dir, out_dir / "stats")
    out.print("\n[bold]leanvision demo[/]: synthetic cervical-cytology detection set")
    for name, s in stats.items():
        size = s["box_size_px"]
        out.print(f"  {name:>6}: {s['images']:4d} images ({s['negative_images']} negative), "
                  f"{s['objects']:5d} abnormal cells, box size median {size.get('median', 0):.0f} px "
                  f"(p5 {size.get('p5', 0):.0f}, p95 {size.get('p95', 0):.0f})")
    out.print(f"  check: {len(reports)} datasets, no problems")
    out.print(f"  plots and stats.json: {out_dir / 'stats'}")
