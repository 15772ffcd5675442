from autoinit.cli import main
from autoinit.schemes import list_schemes


def test_schemes_lists_every_scheme_with_formula(capsys):
    assert main(["schemes"]) == 0
    out = capsys.readouterr().out
    for name in list_schemes():
        assert f"\n{name} " in "\n" + out
    assert "√(6/(n_in+n_out))" in out and "W_ns" in out
