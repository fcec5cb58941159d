"""The real download code of the model cache, run against local servers: a fake Hugging Face hub
(HF_ENDPOINT, read by huggingface_hub at import, so `models fetch` runs in a subprocess) for
DNABERT-S, and a plain file server for fair-esm style URL downloads."""

import hashlib
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch

from tests.helpers import run_cli
from tests.models.fake_hub import FakeServer
from virnuc_hpc.cli import main
from virnuc_hpc.core.errors import ConfigError, IntegrityError, UserError
from virnuc_hpc.models import MissingModelError, ModelCache, get_spec, load_dnabert, masked_mean
from virnuc_hpc.models import tiny
from virnuc_hpc.models.cache import MANIFEST
from virnuc_hpc.models.registry import DNABERT_S_REPO, esm_spec

MAIN, OLD = "a" * 40, "b" * 40  # the commit "main" points at; an older one tagged v1
DNABERT = get_spec("dnabert-s")
DRIVER = Path(__file__).with_name("fetch_driver.py")
PROCESSES = 8


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def main_files() -> dict[str, bytes]:
    return tiny.dnabert_files()


@pytest.fixture(scope="module")
def old_files(main_files) -> dict[str, bytes]:
    config = json.loads(main_files["config.json"]) | {"note": "an older commit"}
    return main_files | {"config.json": json.dumps(config).encode()}


@pytest.fixture
def hub(main_files, old_files):
    with FakeServer() as server:
        repo = server.repo(DNABERT_S_REPO)
        repo.add_commit(OLD, old_files, "v1")
        repo.add_commit(MAIN, main_files, "main")
        yield server


def hub_env(server: FakeServer, tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HF_") and k != "TRANSFORMERS_OFFLINE"}
    return env | {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home"),
                  "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
                  "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"} | extra


def fetch(server: FakeServer, tmp_path: Path, *args, **env) -> subprocess.CompletedProcess:
    return run_cli("models", "fetch", "--model", "dnabert-s", "--cache", tmp_path / "cache",
                   *args, env=hub_env(server, tmp_path, **env))


def manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "cache" / "dnabert-s" / MANIFEST).read_text())


def checksums(records: dict) -> dict[str, str]:
    return {name: record["sha256"] for name, record in records.items()}


def resolved(server: FakeServer) -> set[str]:
    """The revisions of every /resolve/ request."""
    return {path.split("/resolve/")[1].split("/")[0] for _, path, _ in server.log
            if "/resolve/" in path}


def embedding(folder: Path) -> torch.Tensor:
    tokenizer, model = load_dnabert(folder)
    ids = torch.tensor(tokenizer("ACGTTGCAAGGCTTAACGGATTACA" * 4)["input_ids"])[None]
    mask = torch.ones_like(ids)
    with torch.no_grad():
        return masked_mean(model(ids, mask), mask)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------ the hub: DNABERT-S


def test_fetch_downloads_each_file_once_at_the_commit_main_resolves_to(hub, tmp_path,
                                                                       main_files):
    result = fetch(hub, tmp_path)
    assert result.returncode == 0, result.stderr
    entry = tmp_path / "cache" / "dnabert-s"
    assert result.stdout.startswith(f"dnabert-s\t{entry}")
    assert hub.hits[("GET", f"/api/models/{DNABERT_S_REPO}/revision/main")] == 1
    assert {name: hub.gets(name) for name in main_files} == {name: 1 for name in main_files}
    assert resolved(hub) == {MAIN}  # every file at the one resolved commit
    record = manifest(tmp_path)
    assert record["revision"] == MAIN and record["requested_revision"] == "main"
    assert checksums(record["files"]) == {n: sha256(d) for n, d in main_files.items()}
    assert "special_tokens_map.json" in record["files"]  # optional, served: kept
    assert sorted(p.name for p in entry.iterdir()) == sorted([*main_files, MANIFEST])
    assert ModelCache(tmp_path / "cache").verify(DNABERT) == entry
    tiny_entry = ModelCache(tmp_path / "tiny").prewarm(get_spec("tiny-dnabert-s"))
    assert torch.equal(embedding(entry), embedding(tiny_entry))  # same bytes, same model


def test_an_optional_file_the_hub_lacks_is_left_out(hub, tmp_path, main_files):
    del hub.repo(DNABERT_S_REPO).commits[MAIN]["special_tokens_map.json"]
    result = fetch(hub, tmp_path)
    assert result.returncode == 0, result.stderr
    missing = f"/{DNABERT_S_REPO}/resolve/{MAIN}/special_tokens_map.json"
    assert ("HEAD", missing, 404) in hub.log
    assert sorted(manifest(tmp_path)["files"]) == sorted(set(main_files) -
                                                         {"special_tokens_map.json"})
    folder = ModelCache(tmp_path / "cache").verify(DNABERT)
    assert embedding(folder).shape == (1, tiny.TINY_DNABERT.hidden_size)


def test_a_required_file_the_hub_lacks_is_one_error_and_no_entry(hub, tmp_path):
    del hub.repo(DNABERT_S_REPO).commits[MAIN]["tokenizer.json"]
    line = one_line_error(fetch(hub, tmp_path))
    assert f"at commit {MAIN} has no tokenizer.json" in line
    entry = tmp_path / "cache" / "dnabert-s"
    assert not (entry / MANIFEST).exists()
    assert not [p for p in entry.iterdir() if p.name.startswith(".")]  # no staging, no temp
    with pytest.raises(MissingModelError):
        ModelCache(tmp_path / "cache").verify(DNABERT)


def test_repair_fetches_the_recorded_commit_after_main_has_moved(hub, tmp_path, capsys,
                                                                 main_files):
    assert fetch(hub, tmp_path).returncode == 0
    weights = tmp_path / "cache" / "dnabert-s" / "pytorch_model.bin"
    data = weights.read_bytes()
    weights.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    hub.repo(DNABERT_S_REPO).refs["main"] = OLD
    hub.hits.clear()
    hub.log.clear()
    cache = str(tmp_path / "cache")  # plain fetch reports, never rewrites
    assert main(["models", "fetch", "--model", "dnabert-s", "--cache", cache]) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and "models fetch --repair" in err
    assert hub.log == []
    result = fetch(hub, tmp_path, "--repair")
    assert result.returncode == 0, result.stderr
    assert "repairing dnabert-s" in result.stderr
    assert ("GET", f"/api/models/{DNABERT_S_REPO}/revision/{MAIN}") in hub.hits
    assert resolved(hub) == {MAIN}  # not "main", which is now OLD
    assert hub.gets("pytorch_model.bin") == 1
    assert weights.read_bytes() == main_files["pytorch_model.bin"]
    record = manifest(tmp_path)
    assert record["revision"] == MAIN and record["requested_revision"] == "main"
    ModelCache(tmp_path / "cache").verify(DNABERT)


def test_revision_pins_a_tag_and_a_kept_entry_needs_repair_to_move(hub, tmp_path, capsys,
                                                                   old_files, main_files):
    result = fetch(hub, tmp_path, "--revision", "v1")
    assert result.returncode == 0, result.stderr
    assert hub.hits[("GET", f"/api/models/{DNABERT_S_REPO}/revision/v1")] == 1
    assert resolved(hub) == {OLD}
    record = manifest(tmp_path)
    assert record["revision"] == OLD and record["requested_revision"] == "v1"
    assert checksums(record["files"]) == {n: sha256(d) for n, d in old_files.items()}

    hub.log.clear()
    cache = str(tmp_path / "cache")
    for same in ("v1", OLD):  # the entry is kept, without asking the hub
        assert main(["models", "fetch", "--model", "dnabert-s", "--revision", same,
                     "--cache", cache]) == 0
    for other in ("main", MAIN):
        assert main(["models", "fetch", "--model", "dnabert-s", "--revision", other,
                     "--cache", cache]) == 2
        err = capsys.readouterr().err
        assert f"at revision {OLD}, not {other}" in err and "add --repair" in err
    assert hub.log == []
    assert manifest(tmp_path) == record

    result = fetch(hub, tmp_path, "--repair", "--revision", "main")
    assert result.returncode == 0, result.stderr
    record = manifest(tmp_path)
    assert record["revision"] == MAIN and record["requested_revision"] == "main"
    assert checksums(record["files"]) == {n: sha256(d) for n, d in main_files.items()}
    assert resolved(hub) == {MAIN}


def test_an_unknown_revision_is_one_error(hub, tmp_path):
    line = one_line_error(fetch(hub, tmp_path, "--revision", "no-such-branch"))
    assert "has no revision 'no-such-branch'" in line
    assert not (tmp_path / "cache" / "dnabert-s" / MANIFEST).exists()


def test_revision_is_refused_for_models_not_on_the_hub(tmp_path, capsys):
    assert main(["models", "fetch", "--profile", "tiny", "--revision", "main",
                 "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--revision applies to Hugging Face hub models only (dnabert-s)" in err
    assert not tmp_path.joinpath("tiny-dnabert-s").exists()  # refused before fetching any
    with pytest.raises(ConfigError, match="esm2_t6_8M_UR50D"):
        ModelCache(tmp_path).fetch(get_spec("esm2_t6_8M_UR50D"), revision="main")


@pytest.mark.parametrize("mode", ["lock", "nolock"])
def test_eight_processes_download_into_an_empty_cache(hub, tmp_path, main_files, mode):
    root, start = tmp_path / "cache", tmp_path / "go"
    env = hub_env(hub, tmp_path)
    children = [subprocess.Popen([sys.executable, str(DRIVER), str(root), str(start), mode],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
                for _ in range(PROCESSES)]
    start.touch()
    expected = {name: sha256(data) for name, data in main_files.items()}
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"files": expected, "revision": MAIN}
    counts = [hub.gets(name) for name in main_files]
    if mode == "lock":
        assert counts == [1] * len(main_files)  # each file downloaded exactly once
    else:
        assert all(1 <= n <= PROCESSES for n in counts)
    entry = root / "dnabert-s"
    assert sorted(p.name for p in entry.iterdir()) == sorted([*main_files, MANIFEST])


def test_offline_mode_is_one_line_naming_the_fix(hub, tmp_path):
    line = one_line_error(fetch(hub, tmp_path, HF_HUB_OFFLINE="1"))
    assert "cannot download dnabert-s" in line
    assert "run `virnuc-hpc models fetch --model dnabert-s` on a machine with internet" in line
    assert hub.log == []
    with socket.socket() as probe:  # a port nothing listens on: the hub is down
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    line = one_line_error(fetch(hub, tmp_path, HF_ENDPOINT=down))
    assert "cannot download dnabert-s" in line and "on a machine with internet" in line
    assert not (tmp_path / "cache" / "dnabert-s" / MANIFEST).exists()


# ------------------------------------------------------------------ plain URLs: fair-esm


@pytest.fixture(scope="module")
def esm_bytes() -> bytes:
    return tiny.esm_files()[tiny.TINY_ESM_FILE]


@pytest.fixture
def esm_server(esm_bytes, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    real = esm_spec("esm2_t6_8M_UR50D")
    path = urlsplit(real.files[0].url).path  # /fair-esm/models/esm2_t6_8M_UR50D.pt
    with FakeServer() as server:
        server.files[path] = esm_bytes
        local = replace(real.files[0], url=server.url + path)
        yield server, replace(real, files=(local,))


def with_sha256(spec, digest: str):
    return replace(spec, files=(replace(spec.files[0], sha256=digest),))


def test_url_download_is_published_only_with_the_published_sha256(esm_server, tmp_path,
                                                                   esm_bytes):
    server, spec = esm_server
    name = spec.files[0].name
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(IntegrityError, match=name):
        cache.fetch(with_sha256(spec, "0" * 64))
    assert list(cache.entry_dir(spec).iterdir()) == []  # no file, no temp, no MANIFEST
    with pytest.raises(MissingModelError):
        cache.verify(spec)
    good = with_sha256(spec, sha256(esm_bytes))
    path = cache.fetch(good)
    assert path.read_bytes() == esm_bytes and server.gets(name) == 2
    assert checksums(cache.manifest(good)["files"]) == {name: sha256(esm_bytes)}
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([name, MANIFEST])


def test_a_dropped_connection_is_not_published(esm_server, tmp_path, esm_bytes):
    server, spec = esm_server  # no published sha256: only the length can tell
    server.cut[urlsplit(spec.files[0].url).path] = len(esm_bytes) // 2
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(UserError, match="connection dropped"):
        cache.fetch(spec)
    assert list(cache.entry_dir(spec).iterdir()) == []
    server.cut.clear()
    assert cache.fetch(spec).read_bytes() == esm_bytes


@pytest.mark.parametrize("value", ["1", "yes", "TRUE"])
def test_url_download_in_offline_mode_is_one_line(esm_server, tmp_path, monkeypatch, value):
    server, spec = esm_server
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    with pytest.raises(UserError, match="on a machine with internet") as info:
        ModelCache(tmp_path / "cache").fetch(spec)
    assert "\n" not in str(info.value)
    assert server.log == []
