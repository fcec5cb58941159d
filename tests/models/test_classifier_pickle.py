"""The VirNucPro classifier .pth: a whole pickled __main__.MLPClassifier, loaded without running
pickled code."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from virnuc_hpc.core.errors import UserError
from virnuc_hpc.models import load_classifier

# Written here the way VirNucPro's train.py defines and saves its model, run as __main__.
TRAIN_PY = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    import torch.nn.functional as F

    class MLPClassifier(nn.Module):
        def __init__(self, input_dim, hidden_dim, num_class):
            super(MLPClassifier, self).__init__()
            self.hidden_layer = nn.Linear(input_dim, hidden_dim)
            self.bn1 = nn.BatchNorm1d(hidden_dim)
            self.output_layer = nn.Linear(hidden_dim, num_class)
            self.dropout = nn.Dropout(0.5)
            nn.init.xavier_uniform_(self.hidden_layer.weight)
            nn.init.xavier_uniform_(self.output_layer.weight)

        def forward(self, x):
            x = F.relu(self.bn1(self.hidden_layer(x)))
            return self.output_layer(self.dropout(x))

    torch.manual_seed(7)
    model = MLPClassifier(3328, 512, 2)
    model.train()
    for _ in range(3):  # a few batches so BatchNorm's running statistics are not the defaults
        model(torch.randn(32, 3328) * 2 + 0.5)
    model.eval()
    x = torch.randn(16, 3328)
    with torch.no_grad():
        torch.save({"x": x, "y": model(x)}, sys.argv[2])
    torch.save(model, sys.argv[1])
""")


@pytest.fixture(scope="module")
def train_style(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clf")
    pth, expected = folder / "500_model.pth", folder / "expected.pt"
    subprocess.run([sys.executable, "-c", TRAIN_PY, str(pth), str(expected)], check=True)
    return pth, torch.load(expected, weights_only=True)


def test_train_style_pickle_loads_and_predicts_like_the_original(train_style):
    pth, expected = train_style
    model = load_classifier(pth)
    assert not model.training and model.input_dim == 3328
    assert set(model.state_dict()) >= {"bn1.running_mean", "bn1.num_batches_tracked"}
    with torch.no_grad():
        torch.testing.assert_close(model(expected["x"]), expected["y"], atol=1e-6, rtol=0)


def test_the_pickle_really_names_main(train_style):
    assert b"__main__\nMLPClassifier" in train_style[0].read_bytes()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save(Payload(marker), path)
    with pytest.raises(UserError, match="refused to load"):
        load_classifier(path)
    assert not marker.exists()


def test_pickle_of_an_unexpected_class_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), path)
    with pytest.raises(UserError, match="refused to load"):
        load_classifier(path)


def test_truncated_file_is_a_user_error(train_style, tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(train_style[0].read_bytes()[:1000])
    with pytest.raises(UserError, match="models fetch --repair"):
        load_classifier(path)
