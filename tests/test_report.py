import json

import torch
from torch import nn

from autoinit import init_model


def test_report_table_and_dict():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    report = init_model(model, "auto", sample_input=torch.randn(4, 8), seed=1)
    text = str(report)
    assert text.splitlines()[0].startswith(
        "autoinit: scheme=auto gain=1 — 4 parameters initialized, 0 kept as built, 0 left alone"
    )
    assert "auto→kaiming_normal" in text and "relu (a=1.41)" in text
    data = report.to_dict()
    json.dumps(data)  # plain structure
    row = data["parameters"][0]
    assert row["name"] == "0.weight" and row["fan_in"] == 8 and row["fan_out"] == 16
    assert abs(row["std"] - float(model[0].weight.detach().std())) < 1e-6
    assert data["activation_source"] == "traced"
    assert [r.name for r in report.initialized] == ["0.weight", "0.bias", "2.weight", "2.bias"]


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return x + torch.relu(self.fc(x))


def test_compact_merges_repeated_blocks_and_keeps_what_differs():
    model = nn.Sequential(nn.Linear(8, 16), *(_Block() for _ in range(6)), nn.Linear(16, 2))
    report = init_model(model, "kaiming_normal", sample_input=torch.randn(4, 8), seed=1)
    full, compact = str(report).splitlines(), report.compact().splitlines()
    assert len(full) == 3 + 2 * 8 and full[0] == compact[0]
    rows = {line.split()[0]: line for line in compact[3:]}
    # the six blocks' weights (same fans, activation, scheme) are one row; their drawn stds differ: a range
    assert set(rows) == {"0.weight", "0.bias", "{1..6}.fc.weight", "{1..6}.fc.bias", "7.weight", "7.bias"}
    assert "residual: last layer of branch {1..6}/6" in rows["{1..6}.fc.weight"]
    (span,) = (cell for cell in rows["{1..6}.fc.weight"].split() if "–" in cell)
    low, high = (float(v) for v in span.split("–"))
    stds = [report[f"{i}.fc.weight"].std for i in range(1, 7)]
    assert abs(low - min(stds)) < 5e-3 * low and abs(high - max(stds)) < 5e-3 * high
    assert rows["{1..6}.fc.bias"].split()[-1] == "0"


def test_compact_keeps_rows_that_differ_in_more_than_the_index():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    report = init_model(model, "xavier_uniform", sample_input=torch.randn(4, 8), seed=1)
    names = [line.split()[0] for line in report.compact().splitlines()[3:]]
    # fans and gains differ per layer; the head (4) carries a note of its own
    assert names == ["0.weight", "{0,2}.bias", "2.weight", "4.weight", "4.bias"]
