"""Registry and profiles."""

import pytest

from virnuc_hpc.core.errors import ConfigError
from virnuc_hpc.models import get_spec, resolve_profile, spec_from_path
from virnuc_hpc.models.tiny import tiny_dims


def test_profiles_resolve_to_the_three_models():
    real = resolve_profile("real", 500)
    assert (real.dnabert.name, real.esm.name, real.classifier.name) == (
        "dnabert-s", "esm2-3b", "virnucpro-500")
    assert (real.dnabert.dim, real.esm.dim, real.classifier.dim) == (768, 2560, 3328)
    assert real.esm.source == "fair-esm:esm2_t36_3B_UR50D"
    tiny = resolve_profile("tiny", 300)
    assert tiny.classifier.name == "tiny-virnucpro-300"
    assert tiny.classifier.dim == tiny.dnabert.dim + tiny.esm.dim == sum(tiny_dims())
    assert not any(spec.biologically_meaningful for spec in tiny.specs())


@pytest.mark.parametrize("name,chunk,match", [("huge", 300, "real, tiny"),
                                              ("real", 400, "300, 500")])
def test_bad_profile_or_chunk_lists_choices(name, chunk, match):
    with pytest.raises(ConfigError, match=match):
        resolve_profile(name, chunk)


def test_any_fair_esm_model_by_name_is_validated_against_fair_esm():
    assert get_spec("esm1v_t33_650M_UR90S_1").dim == 1280
    assert get_spec("esm2_t6_8M_UR50D").dim == 320
    assert get_spec("esm2_t6_8M_UR50D").files[0].url.endswith("/esm2_t6_8M_UR50D.pt")
    with pytest.raises(ConfigError, match="esm2_t36_3B_UR50D"):
        get_spec("esm2_t99_1M_UR50D")
    with pytest.raises(ConfigError, match="dnabert-s"):
        get_spec("bert")


def test_local_paths(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    assert spec_from_path(tmp_path / "ckpt.pt", "esm").local_path == tmp_path / "ckpt.pt"
    assert spec_from_path(tmp_path, "dnabert").source == "path"
    with pytest.raises(ConfigError, match="DNABERT-style folder"):
        spec_from_path(tmp_path / "ckpt.pt", "dnabert")
    with pytest.raises(ConfigError, match="kind"):
        spec_from_path(tmp_path, "protein")
