"""A LightningCLI fit whose AutoInit callback comes from the config:

    python examples/lightning_cli_fit.py fit --config configs/fit_with_autoinit.yaml
    python examples/lightning_cli_fit.py fit --config configs/fit_with_autoinit.yaml \\
        --trainer.callbacks.scheme=orthogonal
"""

from lightning.pytorch.cli import LightningCLI


def main() -> None:
    LightningCLI(save_config_callback=None)


if __name__ == "__main__":
    main()
