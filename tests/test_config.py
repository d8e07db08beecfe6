"""Option files (core/config.py) and `mllm sft` / `mllm grpo --config FILE --print-config`: YAML and
TOML read alike, the command line overrides the file, unknown keys and wrong types are refused up
front naming the key and the file, --print-config round-trips, the checkpoint keeps the effective
options (options.yaml) and a resumed run compares a config file's values as given options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mllm.core.config import ConfigError, OptionType, read_config, write_config
from test_grpo_cli import sft_checkpoint  # noqa: F401 - fixture: instruction records + a tiny sft checkpoint
from test_sft_cli import invoke, metrics, pipeline  # noqa: F401 - fixture: instruction records + a tiny LLM

OPTIONS = {"lr": OptionType(float), "steps": OptionType(int, nullable=True), "batch_size": OptionType(int),
           "layer": OptionType(str, nullable=True), "bf16": OptionType(bool, nullable=True), "llm": OptionType(str)}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- core/config.py ----------------------------------------------------------------------------


def test_yaml_and_toml_read_to_the_same_values(tmp_path):
    from_yaml = read_config(write(tmp_path / "a.yaml", "lr: 2e-4\nbatch-size: 8\nsteps: null\nbf16: false\n"), OPTIONS)
    from_toml = read_config(write(tmp_path / "a.toml", "lr = 2e-4\nbatch_size = 8\nbf16 = false\n"), OPTIONS)
    assert from_yaml == {"lr": 2e-4, "batch_size": 8, "steps": None, "bf16": False}  # 2e-4 a number, not '2e-4'
    assert from_toml == {"lr": 2e-4, "batch_size": 8, "bf16": False}
    assert read_config(write(tmp_path / "b.yml", "lr: 1\n"), OPTIONS) == {"lr": 1.0}  # an integer is a number
    assert isinstance(read_config(tmp_path / "b.yml", OPTIONS)["lr"], float)
    assert read_config(write(tmp_path / "empty.yaml", ""), OPTIONS) == {}


@pytest.mark.parametrize("text, message", [
    ("batchsize: 8\n", "unknown key 'batchsize' (did you mean 'batch-size'?)"),
    ("batch_size: 8.5\n", "'batch_size' must be an integer, got 8.5"),
    ("batch_size: '8'\n", "'batch_size' must be an integer, got '8'"),
    ("batch_size: true\n", "'batch_size' must be an integer, got True"),
    ("lr: null\n", "'lr' must be a number, got None"),
    ("lr: fast\n", "'lr' must be a number, got 'fast'"),
    ("bf16: 1\n", "'bf16' must be true or false or null, got 1"),
    ("llm: 7\n", "'llm' must be a string, got 7"),
    ("layer: [1, 2]\n", "'layer' must be a string or null, got [1, 2]"),
    ("batch-size: 8\nbatch_size: 8\n", "'batch-size' and 'batch_size' name the same option"),
    ("- lr\n", "expected a table"),
    ("lr: [\n", "is not valid YAML"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path / "run.yaml", text)
    with pytest.raises(ConfigError) as error:
        read_config(path, OPTIONS)
    assert message in str(error.value) and str(path) in str(error.value)


def test_toml_types_and_syntax_are_checked_too(tmp_path):
    with pytest.raises(ConfigError, match="'steps' must be an integer or null, got '300'"):
        read_config(write(tmp_path / "a.toml", 'steps = "300"\n'), OPTIONS)
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_config(write(tmp_path / "b.toml", "steps = \n"), OPTIONS)
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml \(YAML\) or \.toml"):
        read_config(write(tmp_path / "c.json", "{}"), OPTIONS)
    with pytest.raises(ConfigError, match="cannot read"):
        read_config(tmp_path / "missing.yaml", OPTIONS)


def test_written_yaml_reads_back_to_the_same_values(tmp_path):
    values = {"lr": 1e-05, "steps": None, "batch_size": 8, "layer": "1e3", "bf16": True, "llm": "null"}
    text = write_config(values)
    assert "batch-size: 8" in text and text.index("lr") < text.index("steps")  # option spelling, in order
    assert read_config(write(tmp_path / "x.yaml", text), OPTIONS) == values  # '1e3' and 'null' stay strings
    assert yaml.safe_load(text)["lr"] == 1e-05  # plain YAML readers agree on the numbers


# ---- the commands, without training ------------------------------------------------------------


def test_print_config_merges_file_and_command_line_without_reading_records_or_a_model(tmp_path):
    config = write(tmp_path / "key.yaml", "batch-size: 4\nlr: 1e-3\nsteps: 10\nllm: models/none\n")
    result = invoke("sft", tmp_path / "no-records.jsonl", "--config", config, "--lr", "5e-4", "--print-config")
    printed = yaml.safe_load(result.stdout)
    assert printed["batch-size"] == 4 and printed["steps"] == 10 and printed["llm"] == "models/none"  # the file's
    assert printed["lr"] == 5e-4  # the command line wins
    assert printed["projector"] == "mlp" and printed["bf16"] is None  # every other option at its default
    assert not {"config", "print-config", "resume", "extend-to", "overwrite"} & set(printed)
    assert result.stderr == ""


@pytest.mark.parametrize("command, first", [
    ("sft", "steps = 12\nbatch-size = 2\nlora_targets = \"q_proj,v_proj\"\nbf16 = false\nsystem-prompt = \"\"\n"),
    ("grpo", "checkpoint = \"runs/key\"\nbeta = 0.04\nepsilon_high = 0.28\nloss-type = \"grpo\"\ngroup-size = 8\n"),
])
def test_print_config_round_trips_through_config(tmp_path, command, first):
    printed = invoke(command, "--config", write(tmp_path / "first.toml", first), "--print-config").stdout
    again = invoke(command, "--config", write(tmp_path / "printed.yaml", printed), "--print-config").stdout
    assert again == printed
    from_toml = invoke(command, "--config", tmp_path / "first.toml", "--seed", 3, "--print-config").stdout
    assert yaml.safe_load(from_toml)["seed"] == 3 and from_toml.replace("seed: 3", "seed: 0") == printed


@pytest.mark.parametrize("command", ["sft", "grpo"])
@pytest.mark.parametrize("text, message", [
    ("batch-sise: 4\n", "unknown key 'batch-sise' (did you mean 'batch-size'?)"),
    ("batch-size: 2.5\n", "'batch-size' must be an integer, got 2.5"),
    ("lr: '1e-3'\n", "'lr' must be a number, got '1e-3'"),
    ("resume: runs/key\n", "unknown key 'resume'"),  # a run to continue is named on the command line only
])
def test_the_commands_refuse_a_bad_file_up_front(tmp_path, command, text, message):
    path = write(tmp_path / "run.yaml", text)
    result = invoke(command, tmp_path / "no-records.jsonl", "--config", path, "--checkpoint" if command == "grpo"
                    else "--llm", tmp_path / "nowhere", expect=2)
    said = " ".join(result.stderr.split())
    assert message in said and str(path) in said and not result.stdout


@pytest.mark.parametrize("command", ["sft", "grpo"])
def test_a_value_out_of_range_is_refused_as_on_the_command_line(tmp_path, command):
    path = write(tmp_path / "run.yaml", "batch-size: 0\n")
    result = invoke(command, tmp_path / "no-records.jsonl", "--config", path, "--checkpoint" if command == "grpo"
                    else "--llm", tmp_path / "nowhere", expect=2)
    said = " ".join(result.stderr.split())
    assert "batch-size" in said and "no-records" not in said  # before the records are read


# ---- training with a config file ---------------------------------------------------------------


def test_sft_trains_with_the_file_and_keeps_its_options_then_resumes_with_them(pipeline, tmp_path):  # noqa: F811
    records, llm = pipeline
    run = tmp_path / "run"
    config = write(tmp_path / "key.toml", f'llm = "{llm}"\noutput = "{run}"\nsteps = 3\nbatch_size = 4\nlr = 1e-2\n'
                                          "no_such_option_is_here = false\n")
    refused = invoke("sft", records, "--config", config, expect=2)
    assert "unknown key 'no_such_option_is_here'" in refused.stderr and not run.exists()
    config.write_text(config.read_text().replace("no_such_option_is_here = false\n", "bf16 = false\n"))
    result = invoke("sft", records, "--config", config, "--lr", "5e-3")
    assert [r["step"] for r in metrics(result.stdout)] == [1, 2, 3]
    saved = json.loads((run / "trainer_state.json").read_text())["config"]
    assert (saved["steps"], saved["batch_size"], saved["lr"], saved["bf16"]) == (3, 4, 5e-3, False)
    kept = yaml.safe_load((run / "options.yaml").read_text())  # the effective options, in --config's form
    assert (kept["steps"], kept["batch-size"], kept["lr"], kept["llm"], kept["output"]) == (3, 4, 5e-3, str(llm), str(run))
    assert kept["device"] == "cpu" and kept["bf16"] is False  # as resolved, not 'auto'
    assert invoke("sft", "--config", run / "options.yaml", "--print-config").stdout == (run / "options.yaml").read_text()
    invoke("sft", records, "--config", run / "options.yaml", "--seed", 1, "-o", tmp_path / "seed1")  # README's
    rerun = json.loads((tmp_path / "seed1" / "trainer_state.json").read_text())["config"]
    assert (rerun["seed"], rerun["lr"], rerun["batch_size"]) == (1, 5e-3, 4)

    # resumed with the same file (and the lr the run used): accepted, trained further
    resumed = invoke("sft", records, "--config", config, "--lr", "5e-3", "--resume", run, "--extend-to", 4)
    assert [r["step"] for r in metrics(resumed.stdout)] == [4]
    assert yaml.safe_load((run / "options.yaml").read_text())["steps"] == 4
    # resumed with the checkpoint's own options.yaml: accepted (nothing left to train)
    invoke("sft", records, "--config", run / "options.yaml", "--resume", run)
    # a file value that differs from the run's is refused by name, as on the command line
    refused = invoke("sft", records, "--config", config, "--resume", run, expect=2)  # the file's lr 1e-2, the run's 5e-3
    assert "--lr is 0.01, the checkpoint's is 0.005" in " ".join(refused.stderr.split())


def test_grpo_config_names_the_checkpoint_and_a_resume_accepts_the_same_file(sft_checkpoint, tmp_path):  # noqa: F811
    records, sft = sft_checkpoint
    run = tmp_path / "g"
    config = write(tmp_path / "grpo.yaml", f"checkpoint: {sft}\noutput: {run}\nsteps: 1\ngroup-size: 2\nbatch-size: 2\n"
                                           "max-new-tokens: 4\nbf16: false\n")
    invoke("grpo", records, "--config", config)
    kept = yaml.safe_load((run / "options.yaml").read_text())
    assert (kept["checkpoint"], kept["steps"], kept["group-size"], kept["llm"]) == (str(sft), 1, 2, None)
    again = invoke("grpo", records, "--config", run / "options.yaml", "--beta", 0.04, "-o", tmp_path / "kl")  # README's
    assert [r["step"] for r in metrics(again.stdout)] == [1]
    assert yaml.safe_load((tmp_path / "kl" / "options.yaml").read_text())["beta"] == 0.04
    refused = invoke("grpo", records, "--config", run / "options.yaml", expect=2)  # its -o is the run: not over it
    assert f"{run} exists" in " ".join(refused.stderr.split())
    result = invoke("grpo", records, "--config", config, "--resume", run, "--steps", 2)
    assert [r["step"] for r in metrics(result.stdout)] == [2]
    refused = invoke("grpo", records, "--config", config, "--resume", run, "--steps", 3, "--checkpoint", tmp_path,
                     expect=2)
    assert "--checkpoint is" in refused.stderr  # another policy than the one the run aligns
    changed = write(tmp_path / "other.yaml", config.read_text().replace("group-size: 2", "group-size: 3"))
    refused = invoke("grpo", records, "--config", changed, "--resume", run, "--steps", 3, expect=2)
    assert "--group-size is 3, the checkpoint's is 2" in " ".join(refused.stderr.split())
