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
