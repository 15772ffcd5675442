"""Every bundled config parses, and the quality benchmark's quick mode runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from autoinit.tuner.config import TuneConfig

ROOT = Path(__file__).resolve().parents[1]
TUNE_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "fit_with_autoinit.yaml")


@pytest.mark.parametrize("path", TUNE_CONFIGS, ids=lambda p: p.name)
def test_bundled_tune_config_parses_and_builds(path):
    config = TuneConfig(path)
    model, data = config.build()
    assert model is not None and data is not None and config.settings.steps > 0


def test_fit_config_with_the_callback(tmp_path):
    from lightning.pytorch.cli import LightningCLI

    from autoinit import AutoInit

    cli = LightningCLI(
        args=[
            "--config",
            str(ROOT / "configs" / "fit_with_autoinit.yaml"),
            "--trainer.max_steps=2",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
        save_config_callback=None,
    )
    assert any(isinstance(c, AutoInit) and c.scheme == "kaiming_normal" for c in cli.trainer.callbacks)


def test_quality_benchmark_quick_mode(tmp_path):
    out = tmp_path / "quality.md"
    proc = subprocess.run(
        # the long run at 2× (not 10×) keeps the smoke test fast
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_quality.py"),
            "--quick",
            "--long-run",
            "--long-factor=2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "| 8-layer ReLU MLP |" in text and "The literature rediscovered" in text
    assert text.count("\n| ") >= 2 + 7  # the model row and the seven findings, plus headers
    long = text[text.index("## Does the early pick last? (16 steps per seed") :]
    assert "| 8-layer ReLU MLP |" in long and "PyTorch default (" in long
    assert "The early winner is still ahead on " in long
