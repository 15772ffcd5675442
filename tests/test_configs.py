"""Every bundled config parses, the checkout's configs/ is the package's copy, and the quality benchmark's
quick mode runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from autoinit import configs
from autoinit.errors import AutoInitError
from autoinit.tuner.sources.config import TuneConfig

ROOT = Path(__file__).resolve().parents[1]
TUNE_CONFIGS = sorted(p for p in configs.FOLDER.glob("*.yaml") if p.name != "fit_with_autoinit.yaml")


def test_checkout_configs_are_the_package_copy():
    # autoinit/configs/ is the source (package data: `autoinit tune --example` needs no checkout); the
    # top-level configs/ the README and CI name must hold the same files, byte for byte.
    top = {p.name: p.read_bytes() for p in (ROOT / "configs").glob("*.yaml")}
    bundled = {p.name: p.read_bytes() for p in configs.FOLDER.glob("*.yaml")}
    assert sorted(top) == sorted(bundled), "edit autoinit/configs/, then run: autoinit examples --write configs"
    changed = [name for name in bundled if top[name] != bundled[name]]
    assert changed == [], "edit autoinit/configs/, then run: autoinit examples --write configs"
    assert "quickstart" in configs.names() and len(bundled) >= 10


def test_example_lookup_by_name_and_one_line_for_an_unknown_one():
    assert configs.path("quickstart") == configs.path("quickstart.yaml") == configs.FOLDER / "quickstart.yaml"
    with pytest.raises(AutoInitError) as err:
        configs.path("quickstrat")
    message = str(err.value)
    assert "\n" not in message and message.startswith("no example called 'quickstrat': valid names are ")
    assert all(name in message for name in configs.names())


def test_description_is_the_first_sentence_of_the_leading_comment():
    assert configs.description("relu_mlp") == (
        "He et al. (2015) in miniature: a 30-layer plain ReLU MLP on scikit-learn's digits."
    )
    assert configs.description("lstm").startswith("An LSTM classifier") and "autoinit tune" not in "".join(
        configs.description(n) for n in configs.names()
    )


def test_write_copies_every_example(tmp_path):
    written = configs.write(tmp_path / "mine")
    assert sorted(p.name for p in written) == [f"{n}.yaml" for n in configs.names()]
    assert (tmp_path / "mine" / "quickstart.yaml").read_bytes() == configs.path("quickstart").read_bytes()
    (tmp_path / "file").write_text("")
    with pytest.raises(AutoInitError, match="cannot write the examples to"):
        configs.write(tmp_path / "file")


@pytest.mark.parametrize("path", TUNE_CONFIGS, ids=lambda p: p.name)
def test_bundled_tune_config_parses_and_builds(path):
    if path.name.startswith("hf_"):
        pytest.importorskip("transformers")  # the hf extra
    config = TuneConfig(path)
    model, data = config.build()
    assert model is not None and data is not None and config.settings.steps > 0


def test_fit_config_with_the_callback(tmp_path):
    from lightning.pytorch.cli import LightningCLI

    from autoinit import AutoInit

    cli = LightningCLI(
        args=[
            "--config",
            str(configs.path("fit_with_autoinit")),
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


def test_quality_benchmark_real_models_quick_mode(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "quality.md"
    gpt2 = "| HF GPT-2 | 40 × 3 | from an earlier run |"
    # the plain models' part and a real model's row from runs before: both kept
    out.write_text(f"# Quality benchmark\n\n| 8-layer ReLU MLP | kept |\n\n## Real models\n\n{gpt2}\n")
    script = str(ROOT / "benchmarks" / "bench_quality.py")
    proc = subprocess.run(
        [sys.executable, script, "--quick", "--real-models", "--only", "HF ViT", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Quality benchmark\n\n| 8-layer ReLU MLP | kept |")
    real = text[text.index("## Real models") :]
    assert gpt2 in real and "Not run: HF BERT, HF ConvNeXt" in real
    row = next(line for line in real.splitlines() if line.startswith("| HF ViT |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 12 and cells[1] == "8 × 1"
    # ViT's own init is its library's: auto keeps every weight of it, so it is not trained twice
    assert cells[4].endswith("(= own init: same weights)") and cells[4].split()[0] == cells[2]
    assert cells[10].startswith(("population trials", "sequential trials"))


def test_quality_benchmark_grid_schemes_are_names(tmp_path, monkeypatch):
    """The full run's grid takes every applicable scheme: names, not applicable_schemes' (names, authored)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "bench_quality.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_quality", bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    config = TuneConfig(bench.write_config(tmp_path, "mlp", bench.mlp(3, "relu", 0.02), bench.DIGITS, 2, 1))
    names = bench.oracle_schemes(config, None)
    assert names[0] == "as_built" and "kaiming_normal" in names and all(isinstance(n, str) for n in names)
    points = bench.grid_points(names, [0.5, 2.0])
    assert ("as_built", 1.0) in points and ("as_built", 0.5) not in points  # a gainless scheme once
    assert ("kaiming_normal", 0.5) in points and ("kaiming_normal", 2.0) in points


def test_quality_benchmark_only_replaces_its_rows(tmp_path, monkeypatch):
    """``--only LSTM`` replaces the LSTM's quality and long-run rows and keeps the others' and the literature."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "bench_quality.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_quality", bench)
    spec.loader.exec_module(bench)
    long = "## Does the early pick last? (600 steps)\n\n| model | still ahead (objective / final) |\n|---|---|\n"
    count = (
        "\nThe early winner is still ahead on {} of {} models by the objective over the long run, "
        "{} of {} by the final loss.\n"
    )
    old = (
        f"# Q\n\n| CNN | a |\n| LSTM | old |\n\n{long}| CNN | yes / yes |\n| LSTM | yes / no: pick ahead |\n"
        f"{count.format(2, 2, 1, 2)}\n## lit\n\n| He | c |\n"
    )
    new = f"# Q2\n\n| LSTM | new |\n\n{long}| LSTM | no: grid best ahead / yes |\n{count.format(0, 1, 1, 1)}"
    merged = bench.merge_rows(old, new, ["LSTM"])
    assert merged == (
        f"# Q\n\n| CNN | a |\n| LSTM | new |\n\n{long}| CNN | yes / yes |\n| LSTM | no: grid best ahead / yes |\n"
        f"{count.format(1, 2, 2, 2)}\n## lit\n\n| He | c |\n"
    )
    # without a long run, its old row goes rather than stay stale
    dropped = bench.merge_rows(old, "| LSTM | new |\n", ["LSTM"])
    assert "| LSTM | yes / no" not in dropped and count.format(1, 1, 1, 1) in dropped


def test_quality_benchmark_lsuv_package_draws_per_seed_and_replaces_its_column(tmp_path, monkeypatch):
    """The lsuv package's callback draws seed k's start under seed k (it draws from the global RNG, which a
    trial sets for the data order only: every seed got the same draw) and gives the RNG back; only its
    column of the template table is replaced."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "bench_quality.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_quality", bench)
    spec.loader.exec_module(bench)
    config = TuneConfig(bench.write_config(tmp_path, "mlp", bench.mlp(3, "relu", 0.02), bench.DIGITS, 3, 2))
    result = bench.run_trial(config, "default", 1.0, callbacks_after_init=[bench.LsuvPackage()])
    first, second = (curve[0] for curve in result.curves)
    assert abs(first - second) > 1e-3 * abs(first)  # two seeds, two draws (were equal)
    table = (
        "# Q\n\n| model | oracle | lsuv package | steps |\n|---|---|---|---|\n"
        "| CNN | a | 2.305 | 24% |\n| LSTM | b | 1.9 | 25% |\n"
        "\n## long\n\n| model | a | b | c | d |\n| LSTM | 1 | 2 | 3 | 4 |\n"
    )  # the next table names the same models: left alone
    assert bench.replace_lsuv_column(table, {"LSTM": 1.23456}) == table.replace("| 1.9 |", "| 1.235 |")
