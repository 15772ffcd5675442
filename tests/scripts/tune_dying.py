"""``autoinit tune ARGS`` that dies as ``kill -9`` (or the OOM killer) would, at a chosen moment.

usage: tune_dying.py MOMENT N ARGS...   (ARGS: what follows ``autoinit tune``)

- ``before_first_step``: SIGKILL itself as the N-th trial training starts (after its point is chosen);
- ``between_suggestions``: SIGKILL itself in the N-th trial that suggests a gain, after its scheme;
- ``mid_trial``: SIGSTOP itself halfway through the N-th trial training (after its first report to the
  pruner), for the test to inspect the journal and kill it from outside;
- ``writing_outputs``: SIGKILL itself halfway through writing best.yaml;
- ``claiming``: SIGKILL itself once it asked the N-th trial (a population claims its trials one by one);
- ``ctrl_c_starting``: Ctrl-C (SIGINT to itself) as start-up imports ``torch._dynamo``;
- ``ctrl_c_writing_outputs``: Ctrl-C as loss_curves.png is drawn (after trials.csv and best.yaml).
"""

import os
import signal
import sys

moment, n = sys.argv[1], int(sys.argv[2])
calls = [0]


def nth() -> bool:
    calls[0] += 1
    return calls[0] == n


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if moment == "before_first_step":
    import autoinit.tuner.trials.objective as objective

    real_run_trial = objective.run_trial

    def run_trial(*args, **kwargs):
        if nth():
            die()
        return real_run_trial(*args, **kwargs)

    objective.run_trial = run_trial
elif moment == "between_suggestions":
    import optuna

    real_suggest_float = optuna.trial.Trial.suggest_float

    def suggest_float(self, name, *args, **kwargs):
        if name == "gain" and nth():
            die()
        return real_suggest_float(self, name, *args, **kwargs)

    optuna.trial.Trial.suggest_float = suggest_float
elif moment == "mid_trial":
    from autoinit.tuner.trials.trial import LossCurve

    real_batch_end = LossCurve.on_train_batch_end
    curves: list[int] = []

    def on_train_batch_end(self, trainer, *args):
        real_batch_end(self, trainer, *args)
        if id(self) not in curves:
            curves.append(id(self))
        if len(curves) == n and len(self.values) == self.every + 1:
            os.kill(os.getpid(), signal.SIGSTOP)

    LossCurve.on_train_batch_end = on_train_batch_end
elif moment == "writing_outputs":
    import autoinit.tuner.report.outputs as outputs

    def write_best_yaml(path, summary):
        path.write_text("scheme: ")  # half a file, then gone
        die()

    outputs.write_best_yaml = write_best_yaml
elif moment == "claiming":
    import optuna

    real_ask = optuna.Study.ask

    def ask(self, *args, **kwargs):
        trial = real_ask(self, *args, **kwargs)
        if nth():
            die()  # the trial is RUNNING, not yet claimed
        return trial

    optuna.Study.ask = ask
elif moment == "ctrl_c_starting":
    import importlib.abc

    class CtrlC(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch._dynamo":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlC())
elif moment == "ctrl_c_writing_outputs":
    import autoinit.tuner.report.outputs as outputs

    real_plot_curves = outputs.plot_curves

    def plot_curves(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_plot_curves(*args, **kwargs)

    outputs.plot_curves = plot_curves
else:
    sys.exit(f"unknown moment {moment}")

from autoinit.cli import main  # noqa: E402

sys.exit(main(["tune", *sys.argv[3:]]))
