"""`virnuc-hpc models fetch|verify|list` on the tiny profile."""

from virnuc_hpc.cli import main


def test_fetch_list_verify_and_repair(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["models", "fetch", "--profile", "tiny", "--chunk-size", "300",
                 "--cache", cache]) == 0
    assert "not biologically meaningful" in capsys.readouterr().out
    assert main(["models", "list", "--cache", cache]) == 0
    listing = capsys.readouterr().out
    assert "tiny-esm2\tesm\tverified" in listing
    assert "esm2-3b\tesm\tmissing\t0 B\tfair-esm:esm2_t36_3B_UR50D" in listing  # ESM-2 3B listed
    assert "virnucpro-500\tclassifier\tmissing" in listing
    assert main(["models", "verify", "--cache", cache]) == 0
    assert capsys.readouterr().out.count("verified") == 3
    weights = tmp_path / "cache" / "tiny-dnabert-s" / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert main(["models", "verify", "--cache", cache]) == 1
    out = capsys.readouterr().out
    assert f"tiny-dnabert-s\tFAILED\t{weights}" in out and "models fetch --repair" in out
    assert main(["models", "list", "--cache", cache]) == 0
    assert "tiny-dnabert-s\tdnabert\tcorrupt" in capsys.readouterr().out
    assert main(["models", "fetch", "--repair", "--profile", "tiny", "--chunk-size", "300",
                 "--cache", cache]) == 0
    assert main(["models", "verify", "--profile", "tiny", "--chunk-size", "300",
                 "--cache", cache]) == 0


def test_verify_of_a_missing_model_fails(tmp_path, capsys):
    assert main(["models", "verify", "--model", "esm2-3b", "--cache", str(tmp_path)]) == 1
    assert "models fetch --model esm2-3b" in capsys.readouterr().out


def test_unknown_model_is_a_config_error(tmp_path, capsys):
    assert main(["models", "fetch", "--model", "nope", "--cache", str(tmp_path)]) == 2
    assert "valid:" in capsys.readouterr().err
