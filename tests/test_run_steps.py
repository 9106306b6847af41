"""scripts/run_steps.py: chains of project commands side by side, as `spacy project run` would run them."""

import subprocess
import sys
from pathlib import Path

import srsly
from conftest import REPO

SCRIPT = REPO / "scripts" / "run_steps.py"
# each command writes its file, then waits for the other's: both succeed only when they run at once
WAIT = (
    "python -c \"import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('x'); "
    "t = time.time(); exec('while not pathlib.Path(sys.argv[2]).exists() and time.time() - t < 20: time.sleep(0.05)'); "
    'sys.exit(0 if pathlib.Path(sys.argv[2]).exists() else 3)" '
)


def _project(tmp_path: Path, commands) -> Path:
    srsly.write_yaml(
        tmp_path / "project.yml",
        {"title": "t", "vars": {"tag": "a", "code": 0}, "directories": ["out"], "commands": commands},
    )
    return tmp_path


def _run(proj: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--heartbeat", "1"], cwd=proj, capture_output=True, text=True, timeout=120
    )


def test_chains_run_at_once_and_the_lock_skips_them_after(tmp_path):
    proj = _project(
        tmp_path,
        [
            {"name": "a", "script": [WAIT + "out/a.txt out/b.txt"], "outputs": ["out/a.txt"]},
            {"name": "b", "script": [WAIT + "out/b.txt out/a.txt"], "outputs": ["out/b.txt"]},
            {
                "name": "c",
                "script": ["python -c \"import pathlib; pathlib.Path('out/c.txt').write_text('${vars.tag}')\""],
                "deps": ["out/a.txt"],
                "outputs": ["out/c.txt"],
            },
        ],
    )
    res = _run(proj, "a c", "b", "--jobs", "2", "--vars.tag", "z")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (proj / "out" / "c.txt").read_text() == "z"  # the variable passed on reached the command
    assert (proj / "logs" / "a.log").read_text().startswith("$ python -c")
    lock = srsly.read_yaml(proj / "project.lock")
    assert set(lock) == {"a", "b", "c"}
    again = _run(proj, "a c", "b", "--jobs", "2", "--vars.tag", "z")
    assert again.returncode == 0 and again.stdout.count("Skipping") == 3, again.stdout
    # the same command through spaCy's own runner sees the entry this script wrote
    own = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "c", ".", "--vars.tag", "z"],
        cwd=proj,
        capture_output=True,
        text=True,
    )
    assert own.returncode == 0 and "Skipping 'c'" in own.stdout, own.stdout + own.stderr


def test_one_job_runs_chains_in_turn(tmp_path):
    proj = _project(
        tmp_path,
        [
            {"name": "a", "script": [WAIT.replace("< 20", "< 1") + "out/a.txt out/b.txt"], "outputs": ["out/a.txt"]},
            {"name": "b", "script": [WAIT.replace("< 20", "< 1") + "out/b.txt out/a.txt"], "outputs": ["out/b.txt"]},
        ],
    )
    res = _run(proj, "a", "b", "--jobs", "1")
    # a waited for b, which had not started: a fails, and b is not started after a failure
    assert res.returncode == 1
    assert "✘ a failed" in res.stdout and "b                        not run" in res.stdout, res.stdout
    assert not (proj / "out" / "b.txt").exists()
    assert "failed: a" in res.stderr
    assert not (proj / "project.lock").exists() or "a" not in (srsly.read_yaml(proj / "project.lock") or {})


def test_a_variable_not_passed_on_is_named(tmp_path):
    proj = _project(
        tmp_path, [{"name": "a", "script": ["python -c \"print('${vars.tag} ${vars.code}')\""], "outputs": ["out/a"]}]
    )
    res = _run(proj, "a", "--vars.tag", "z")
    assert res.returncode == 2 and "--vars.code ${vars.code}" in res.stderr, res.stderr
    res = _run(proj, "a b", "--vars.tag", "z", "--vars.code", "1")
    assert res.returncode == 2 and "not commands of" in res.stderr and ": b" in res.stderr, res.stderr


def test_a_missing_dependency_stops_the_chain(tmp_path):
    proj = _project(
        tmp_path,
        [
            {"name": "a", "script": ['python -c "print(1)"'], "deps": ["out/nothing.txt"], "outputs": ["out/a"]},
            {"name": "b", "script": ['python -c "print(2)"'], "outputs": ["out/b"]},
        ],
    )
    res = _run(proj, "a b")
    assert res.returncode == 1 and "missing dependency out/nothing.txt" in res.stdout, res.stdout
    assert "b                        not run" in res.stdout


def test_the_lock_file_is_read_under_the_runners_lock(tmp_path, monkeypatch):
    """One chain reads project.lock (check_rerun) while another may be writing it
    (update_lockfile empties the file, then writes it): unguarded, the read could find an
    empty file, and weasel then fails on None."""
    import importlib.util

    from weasel.util import load_project_config

    spec = importlib.util.spec_from_file_location("run_steps_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    proj = _project(tmp_path, [{"name": "a", "script": ['python -c "pass"'], "outputs": ["out/a"]}])
    (proj / "logs").mkdir()
    runner = mod.Runner(proj, load_project_config(proj), proj / "logs", 2)
    held = []
    real = mod.check_rerun

    def checking(*args, **kwargs):
        held.append(runner.lock.locked())
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "check_rerun", checking)
    assert runner.run_command("a")
    assert held == [True]


def test_the_projects_groups_declare_what_their_commands_read_and_write():
    """spaCy skips a group when its own deps and outputs are unchanged: a file that one of
    its commands reads but the group does not list would not make it run again."""
    import shlex

    from weasel.util import load_project_config

    config = load_project_config(REPO)
    commands = {c["name"]: c for c in config["commands"]}
    groups = [c for c in config["commands"] if "scripts/run_steps.py" in c["script"][0]]
    assert {g["name"] for g in groups} == {"prepare", "linkers", "finish"}
    for group in groups:
        args = shlex.split(group["script"][0])
        chains = [a for a in args[2 : args.index("--jobs")]]
        names = [n for chain in chains for n in chain.split()]
        outputs = {o for n in names for o in commands[n].get("outputs", [])}
        deps = {d for n in names for d in commands[n].get("deps", [])} - outputs
        assert deps <= set(group["deps"]), (group["name"], deps - set(group["deps"]))
        assert outputs == set(group["outputs"]), (group["name"], outputs ^ set(group["outputs"]))
        assert "scripts/run_steps.py" in group["deps"]
    in_groups = {n for g in groups for a in shlex.split(g["script"][0])[2:] for n in a.split() if n in commands}
    in_all = set(config["workflows"]["all"]) | in_groups
    # every command but the separate text classifier is part of `all`
    assert set(commands) - in_all == {"textcat-topics"}, set(commands) - in_all


def test_pip_in_a_script_is_this_interpreters_as_in_spacy_project_run(tmp_path):
    import os

    import pip

    proj = _project(tmp_path, [{"name": "a", "script": ["pip --version"], "outputs": ["out/a"]}])
    env = dict(os.environ, PATH=str(tmp_path / "empty"))  # no pip on PATH: only `python -m pip` works
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "a", "--heartbeat", "1"], cwd=proj, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(Path(pip.__file__).parent) in (proj / "logs" / "a.log").read_text()
