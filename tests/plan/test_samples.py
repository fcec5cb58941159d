"""A study's inputs: sample names from files, the nf-core sheet, and every bad sheet refused in
one line naming the sheet and its line, exit 2, with nothing written."""

from __future__ import annotations

import pytest

from virnuc_hpc.cli import main
from virnuc_hpc.core.errors import ConfigError, InputError
from virnuc_hpc.plan.samples import read_samplesheet, sample_name, study_from_files, unsafe_name

FASTA = ">r0 x\nACGTACGTACGTAAACCC\n>r1\nGGGTTTACGTAC\n"


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.fa", "b.fq.gz", "c.fasta"):
        (data / name).write_text(FASTA)
    return data


@pytest.mark.parametrize("given, name", [
    ("reads.fa.gz", "reads"), ("S1.R1.fastq.gz", "S1.R1"), ("x.FASTA", "x"), ("x.fa.bz2", "x"),
    ("plain", "plain"), ("a.b.c", "a.b.c"), (".fa", ".fa"), ("run.zst", "run")])
def test_a_sample_is_named_by_its_file_without_extensions(given, name):
    assert sample_name(f"/data/{given}") == name


@pytest.mark.parametrize("name, ok", [
    ("S01", True), ("a.b-c_d", True), ("-x", True), (".hidden", False), ("a b", False),
    ("a/b", False), ("..", False), ("", False), ("x" * 128, True), ("x" * 129, False),
    ("samples.tsv", False), ("Summary.JSON", False), ("é", False)])
def test_names_must_be_safe_as_folders(name, ok):
    assert (unsafe_name(name) is None) == ok


def test_a_sheet_keeps_metadata_and_reads_relative_paths_from_its_folder(files, tmp_path):
    sheet = tmp_path / "sheets" / "samples.csv"
    sheet.parent.mkdir()
    sheet.write_bytes(b"\xef\xbb\xbfbatch,fasta,sample,note\r\n"
                      b"1,../data/a.fa,A,\"x, y\"\r\n\r\n"
                      b"2," + str(files / "c.fasta").encode() + b",C,\r\n")
    study = read_samplesheet(sheet)
    assert [s.name for s in study.samples] == ["A", "C"] and study.per_sample
    assert study.samples[0].path == files / "a.fa" and study.sheet == sheet.resolve()
    assert study.samples[0].metadata == {"batch": "1", "note": "x, y"}
    assert study.samples[1].origin == f"{sheet}: line 4"


def test_files_give_a_study_one_file_keeps_the_single_layout(files):
    one = study_from_files([files / "a.fa"])
    assert not one.per_sample and one.samples[0].name == "a"
    three = study_from_files([files / "a.fa", files / "b.fq.gz", files / "c.fasta"])
    assert three.per_sample and [s.name for s in three.samples] == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="--samplesheet"):
        study_from_files([])


def cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


BAD_SHEETS = {
    "missing column": ("sample,reads\nA,data/a.fa\n",
                       "line 1: no column 'fasta' in the header (sample,reads); fix: one header "
                       "line `sample,fasta[,...]`, then one line per sample"),
    "missing file": ("sample,fasta\nA,data/a.fa\nB,data/none.fa\n",
                     "line 3: sample 'B': {tmp}/data/none.fa: no such file; fix: check the path"),
    "duplicate sample": ("sample,fasta\nA,data/a.fa\nB,data/c.fasta\nA,data/b.fq.gz\n",
                         "line 4: duplicate sample 'A', first at line 2; fix: give every "
                         "sample its own name"),
    "same name but case": ("sample,fasta\nS1,data/a.fa\ns1,data/c.fasta\n",
                           "line 3: duplicate sample 's1', first at line 2 (names differing "
                           "only in case collide on some file systems)"),
    "duplicate file": ("sample,fasta\nA,data/a.fa\nB,./data/../data/a.fa\n",
                       "line 3: sample 'B' names the same file as sample 'A' (line 2): "
                       "{tmp}/data/a.fa; fix: give each file once (one line per sample)"),
    "unsafe name": ("sample,fasta\nA,data/a.fa\n../B,data/c.fasta\n",
                    "line 3: sample name '../B' is not usable as a folder name (allowed: "
                    "letters, digits, '.', '_' and '-', at most 128 characters, not starting "
                    "with '.'); fix: rename the sample"),
    "results file name": ("sample,fasta\nsummary.json,data/a.fa\n",
                          "line 2: sample name 'summary.json' is the name of a results file"),
    "empty sheet": ("sample,fasta\n\n", "no samples (a header line and no rows)"),
    "empty file": ("", "the sample sheet is empty"),
    "short row": ("sample,fasta,batch\nA,data/a.fa\n",
                  "line 2: 2 fields, the header has 3"),
    "empty value": ("sample,fasta\nA,\n", "line 2: empty 'fasta' value"),
}


@pytest.mark.parametrize("case", sorted(BAD_SHEETS))
def test_a_bad_sheet_is_refused_in_one_line_and_nothing_is_written(files, tmp_path, capsys,
                                                                   case):
    text, message = BAD_SHEETS[case]
    sheet = tmp_path / "samples.csv"
    sheet.write_text(text)
    run_dir = tmp_path / "run"
    code, err = cli(capsys, "plan", "--samplesheet", sheet, "--run-dir", run_dir, "--models",
                    "tiny")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"virnuc-hpc plan: error: {sheet}: ")
    assert message.format(tmp=tmp_path) in err[0]
    assert not run_dir.exists()


@pytest.mark.parametrize("command", ["predict", "submit"])
def test_predict_and_submit_refuse_a_bad_sheet_before_writing(files, tmp_path, capsys, command):
    sheet = tmp_path / "samples.csv"
    sheet.write_text("sample,fasta\nA,data/a.fa\nA,data/c.fasta\n")
    out = tmp_path / "out"
    where = ["-o", out] if command == "predict" else ["--run-dir", out, "--profile", "local"]
    code, err = cli(capsys, command, "--samplesheet", sheet, *where, "--models", "tiny")
    assert code == 2 and len(err) == 1 and "line 3: duplicate sample 'A'" in err[0]
    assert not out.exists()


def test_bad_file_lists_are_refused_naming_both_files(files, tmp_path, capsys):
    run_dir = tmp_path / "run"
    (files / "sub").mkdir()
    (files / "sub" / "a.fq").write_text("@r0\nACGT\n+\nIIII\n")
    for argv, message in (
            ([files / "a.fa", files / "sub" / "a.fq"],
             f"{files}/sub/a.fq: gives the sample name 'a', as {files}/a.fa does"),
            ([files / "a.fa", files / "c.fasta", files / "a.fa"],
             f"{files}/a.fa: given twice (also as {files}/a.fa)"),
            ([files / "a.fa", files / "missing.fa"], f"{files}/missing.fa: no such file"),
            (["--samplesheet", files / "x.csv", files / "a.fa"],
             "give input files or --samplesheet, not both")):
        code, err = cli(capsys, "plan", *argv, "--run-dir", run_dir, "--models", "tiny")
        assert code == 2 and len(err) == 1 and message in err[0], err
    assert not run_dir.exists()
    (files / "my reads.fa").write_text(FASTA)
    with pytest.raises(InputError, match="its sample name 'my reads' .* is not usable"):
        study_from_files([files / "a.fa", files / "my reads.fa"])
    assert not study_from_files([files / "my reads.fa"]).per_sample  # one file: no folders


def test_make_submit_takes_a_samplesheet_like_an_input():
    import subprocess

    from tests.helpers import REPO

    def make(*args) -> str:
        done = subprocess.run(["make", "-s", "-n", *args], cwd=REPO, capture_output=True,
                              text=True)
        return done.stdout.splitlines()[-1].split()

    assert make("submit", "SAMPLESHEET=study/samples.csv")[1:] == [
        "submit", "--samplesheet", "study/samples.csv", "--run-dir", "runs/samples",
        "--profile", "slurm"]
    assert make("submit", "INPUT=reads.fa", "RUN=runs/r")[1:] == [
        "submit", "reads.fa", "--run-dir", "runs/r", "--profile", "slurm"]
    assert make("status", "RUN=runs/r", "BY_SAMPLE=1")[1:] == ["status", "runs/r", "--by-sample"]
