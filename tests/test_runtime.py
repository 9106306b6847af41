"""`text2node link` keeps PyTorch out of a process whose pipeline does not need it (_runtime)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_text2node._runtime import ENV, _link_refs, needs_torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _bilstm_config(tmp_path: Path) -> Path:
    text = (CONFIGS / "linker.cfg").read_text(encoding="utf8")
    assert "spacy-text2node.PhraseMapperCNN.v1" in text
    cfg = tmp_path / "bilstm.cfg"
    cfg.write_text(text.replace("PhraseMapperCNN.v1", "PhraseMapperBiLSTM.v1"), encoding="utf8")
    return cfg


def test_needs_torch_reads_the_configs(tmp_path):
    assert needs_torch([str(CONFIGS / "linker.cfg")]) is False
    assert needs_torch([str(_bilstm_config(tmp_path))]) is True
    # a pipeline folder that sources the Bi-LSTM one: found through the sourced path
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "config.cfg").write_text(f'[components.linker]\nsource = "{tmp_path / "bilstm.cfg"}"\n', encoding="utf8")
    assert needs_torch([str(folder)]) is True
    # clinical_noun_chunks.cfg names its linker by an override path and sources an installed package
    assert needs_torch([str(CONFIGS / "clinical_noun_chunks.cfg"), str(_bilstm_config(tmp_path))]) is True
    assert needs_torch(["no_such_pipeline_here"]) is None  # unreadable: torch is kept


def test_link_command_line_is_parsed():
    argv = ["/usr/bin/text2node", "link", "model", "in.jsonl", "out.jsonl", "-n", "2", "--paths.linker", "L"]
    assert _link_refs(argv) == ["model", "L"]
    assert _link_refs(["text2node", "link", "m", "i", "o", "--paths.linker=L2"]) == ["m", "L2"]
    assert _link_refs(["text2node", "evaluate", "m", "i"]) is None
    assert _link_refs(["python", "link", "m", "i", "o"]) is None


def _probe(argv, env_value=None, code="") -> str:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    script = (
        f"import sys; sys.argv = {argv!r}\n"
        "import spacy_text2node, spacy\n"
        "t = sys.modules.get('torch', 0)\n"
        "print('left out' if t is None else 'imported' if t else 'absent')\n" + code
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_link_of_a_torch_free_pipeline_leaves_torch_out(tmp_path):
    pytest.importorskip("torch", reason="torch is installed with the full extras")
    cnn = ["text2node", "link", str(CONFIGS / "linker.cfg"), "in.jsonl", "out.jsonl"]
    # the policy reaches child processes (bulk workers, Spark's Python workers) through the environment
    child = (
        "import subprocess\n"
        "print(subprocess.run([sys.executable, '-c', 'import sys, spacy_text2node; "
        'print(sys.modules.get("torch", 0) is None)\'], capture_output=True, text=True).stdout)\n'
    )
    assert _probe(cnn, code=child).split() == ["left", "out", "True"]
    bilstm = ["text2node", "link", str(_bilstm_config(tmp_path)), "in.jsonl", "out.jsonl"]
    assert _probe(bilstm).strip() == "imported"
    assert _probe(cnn, env_value="1").strip() == "imported"
    # anything other than `text2node link` imports as usual, unless told (the next test)
    assert _probe(["python", "script.py"]).strip() == "imported"


def test_bilstm_in_a_process_that_left_torch_out_names_the_switch():
    code = (
        "from spacy_text2node.ml.mapper import PhraseMapperBiLSTM\n"
        "try:\n    PhraseMapperBiLSTM(width=16)\nexcept ImportError as e:\n    print(e)\n"
    )
    out = _probe(["python", "x.py"], env_value="0", code=code)
    assert out.startswith("left out") and f"set {ENV}=1" in out
