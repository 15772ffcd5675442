"""The storage's credentials: masked in every form a URL takes, and never on a subprocess's command line
or in a file others can read."""

import stat

import pytest
from helpers import BlobsData, TinyClassifier

from autoinit.tuner.execution.launcher import worker_command
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.sources.spec import PythonSpec
from autoinit.tuner.storage import backend as storage

PASSWORD = "pa55-Zq9"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"postgresql://user:{PASSWORD}@db-host/autoinit", "postgresql://user:***@db-host/autoinit"),
        # an unencoded @ (and / or ?) in the password: everything up to the last @ is the password
        ("postgresql://user:p@ss@db-host:5432/autoinit", "postgresql://user:***@db-host:5432/autoinit"),
        ("postgresql://user:p/a?s@db-host/autoinit", "postgresql://user:***@db-host/autoinit"),
        (
            f"postgresql://db-host/a?user=u&password={PASSWORD}&sslmode=require",
            "postgresql://db-host/a?user=u&password=***&sslmode=require",
        ),
        (f"mysql+pymysql://u@h/d?PASSWORD={PASSWORD}", "mysql+pymysql://u@h/d?PASSWORD=***"),
        ("postgresql://user@db-host:5432/autoinit", "postgresql://user@db-host:5432/autoinit"),
        ("sqlite:///studies/a.db", "sqlite:///studies/a.db"),
        ("out/study.journal", "out/study.journal"),
    ],
)
def test_every_form_of_password_is_masked(url, masked):
    assert storage.mask_url(url) == masked
    # in running text, as an error quotes it
    assert storage.mask_url(f"cannot open storage {url} (OperationalError: refused)") == (
        f"cannot open storage {masked} (OperationalError: refused)"
    )


def test_the_study_line_masks_a_query_password(tmp_path):
    url = f"postgresql://u@db-host/autoinit?password={PASSWORD}"
    assert PASSWORD not in storage.describe(TuneSettings(storage=url), tmp_path)


def test_a_worker_gets_the_storage_through_its_environment_not_its_command_line(tmp_path):
    from autoinit.tuner.sources.config import TuneConfig

    url = f"postgresql://user:{PASSWORD}@db-host/autoinit"
    path = tmp_path / "c.yaml"
    path.write_text(
        "model:\n  class_path: autoinit.templates.DeepMLP\n"
        "data:\n  class_path: autoinit.templates.TeacherData\n"
        "trainer: {accelerator: cpu, devices: 1}\n"
    )
    for given in ([f"--tune.storage={url}"], ["--tune.storage", url]):
        config = TuneConfig(path, ["--tune.steps=5", *given, "--tune.workers=2"])
        assert config.settings.storage == url
        cmd, env = worker_command(0, config, config.settings)
        assert not any(PASSWORD in arg for arg in cmd)
        assert "--tune.steps=5" in " ".join(cmd)
        assert env[storage.STORAGE_ENV] == url


def test_the_worker_reads_the_storage_back(monkeypatch):
    url = f"postgresql://user:{PASSWORD}@db-host/autoinit"
    monkeypatch.setenv(storage.STORAGE_ENV, url)
    assert storage.inherited_overrides(["--tune.steps=5"]) == ["--tune.steps=5", f"--tune.storage={url}"]
    monkeypatch.delenv(storage.STORAGE_ENV)
    assert storage.inherited_overrides(["--tune.steps=5"]) == ["--tune.steps=5"]


def test_the_spec_file_for_workers_holds_no_password_and_is_private(tmp_path):
    url = f"postgresql://user:{PASSWORD}@db-host/autoinit"
    settings = TuneSettings(storage=url, workers=2, output=str(tmp_path / "out"), steps=4, seeds=1)
    spec = PythonSpec(TinyClassifier, settings=settings, datamodule=BlobsData)
    path = spec.path
    assert PASSWORD not in path.read_text() and "db-host" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_outage_is_one_line_from_the_main_thread_and_silent_from_a_background_one(tmp_path, capsys):
    import threading

    from sqlalchemy.exc import OperationalError

    from autoinit.errors import AutoInitError

    url = f"postgresql://user:{PASSWORD}@db-host/autoinit"
    refused = OperationalError("connect", {}, Exception("connection refused"))

    def heartbeat():  # Optuna's heartbeat thread meets the outage first
        raise refused

    with pytest.raises(AutoInitError) as caught, storage.outage_is_one_line(TuneSettings(storage=url), tmp_path):
        thread = threading.Thread(target=heartbeat)
        thread.start()
        thread.join()
        try:
            raise refused
        except OperationalError as exc:
            raise RuntimeError("Optuna's own error while handling it") from exc
    message = str(caught.value)
    assert "\n" not in message and PASSWORD not in message
    assert message.startswith("lost the connection to the storage postgresql://user:***@db-host/autoinit")
    assert capsys.readouterr().err == ""  # nothing from the thread
    assert storage.unreachable(ValueError("not an outage")) is None
