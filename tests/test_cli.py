import subprocess
import sys

import pytest

from autoinit.cli import main
from autoinit.schemes import list_schemes


def test_schemes_lists_every_scheme_with_formula(capsys):
    assert main(["schemes"]) == 0
    out = capsys.readouterr().out
    for name in list_schemes():
        assert f"\n{name} " in "\n" + out
    assert "√(6/(n_in+n_out))" in out and "W_ns" in out


def test_version(capsys):
    import autoinit

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"autoinit {autoinit.__version__}\n"


def test_python_dash_m_autoinit_is_the_same_command_line():
    import autoinit

    run = [sys.executable, "-m", "autoinit"]
    proc = subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, f"autoinit {autoinit.__version__}\n")
    proc = subprocess.run([*run, "inspect", "no-such.yaml"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (
        "autoinit: error: no config file at 'no-such.yaml': pass the path of a tune YAML (see configs/)\n"
    )
    proc = subprocess.run(run, capture_output=True, text=True, timeout=120)  # no command: usage, exit 2
    assert proc.returncode == 2 and proc.stderr.startswith("usage: autoinit")


def test_help_imports_neither_torch_nor_lightning():
    # `autoinit tune --help` spent 2.2 s importing torch through autoinit/__init__.py
    code = (
        "import sys, runpy; sys.argv = ['autoinit', 'tune', '--help']\n"
        "try: runpy.run_module('autoinit', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[-1] == "[]", proc.stderr
    import autoinit

    assert autoinit.init_model.__module__ == "autoinit.initialize" and "as_built" in autoinit.list_schemes()


def test_examples_lists_the_bundled_configs(capsys, tmp_path):
    from autoinit import configs

    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    for name in configs.names():
        assert f"\n{name} " in "\n" + out
    assert "quickstart" in out and "autoinit tune --example quickstart" in out
    assert main(["examples", "--write", str(tmp_path / "c")]) == 0
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.yaml")) == configs.names()


def test_tune_example_reads_the_bundled_config(monkeypatch):
    from autoinit import configs
    from autoinit.tuner import run

    seen = []
    monkeypatch.setattr(run, "tune", lambda config: seen.append(config) or 0)
    assert main(["tune", "--example", "quickstart", "--tune.steps=7"]) == 0
    assert seen[0].path.resolve() == configs.path("quickstart") and seen[0].settings.steps == 7


def test_inspect_example_runs_without_a_checkout_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the package's copy is read
    out = tmp_path / "inspect.png"
    args = ["inspect", "--example", "quickstart", "--schemes", "kaiming_normal", "--out", str(out)]
    assert main([*args, "--model.init_args.depth=3"]) == 0
    assert out.is_file() and "kaiming_normal" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune", "--example", "nope"], "no example called 'nope': valid names are cnn_digits, "),
        (["tune"], "give a config file or --example NAME (autoinit examples lists the bundled ones)"),
        (["fit", "--example", "quickstart", "a.yaml"], "give a config file or --example quickstart, not both"),
        (["inspect", "--example", "quickstart", "--gain", "1", "--tune.steps", "5"], "not both (got '5'"),
    ],
)
def test_config_or_example_mistakes_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("autoinit: error: ") and message in err
