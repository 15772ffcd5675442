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
