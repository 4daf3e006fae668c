"""Run folders: the command a missing step names must be one the CLI accepts; run.json is replaced whole.

"Another user" is a child process that becomes user nobody when the tests run as root (whom permissions do not
stop), and otherwise the same user facing files and folders without write permission: either way it cannot
change them, as an edge service reading a run it does not own, or a read-only mount of it, cannot.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.errors import ArtifactError
from hybridroute.runs import RunLayout, step_command
from support.users import BECOME_ANOTHER_USER, folder_anyone_may_enter


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("compress", "hybridroute compress --run runs/a"),
        ("calibrate", "hybridroute calibrate --run runs/a"),
        ("finetune", "hybridroute finetune --out runs/a"),
        ("adapt", "hybridroute adapt --out runs/a"),
        ("train", "hybridroute train --data FILE --out runs/a"),
    ],
)
def test_each_step_is_named_with_the_flag_its_command_takes(step: str, expected: str) -> None:
    assert step_command(step, Path("runs/a")) == expected


@pytest.mark.parametrize("step", ["compress", "calibrate", "finetune", "adapt", "train"])
def test_the_named_command_parses(step: str) -> None:
    words = step_command(step, Path("runs/a")).split()[1:]
    result = CliRunner().invoke(main, [*words, "--help"])  # --help parses every option given before it
    assert result.exit_code == 0, result.output


def test_a_missing_step_names_its_command(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    with pytest.raises(ArtifactError) as info:
        layout.require(layout.onnx_fp32, "compress")
    assert str(info.value) == f"{tmp_path / 'onnx_fp32'} is missing: run `hybridroute compress --run {tmp_path}` first"


def test_run_json_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = RunLayout(tmp_path)
    layout.update_info(data={"checksum": "abc"})
    mode = layout.info_file.stat().st_mode
    (tmp_path / "plain.json").write_text("{}")
    assert mode == (tmp_path / "plain.json").stat().st_mode  # the permissions a plain write gives

    def crash(*args: object) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        layout.update_info(compress={"size_mb": 1.0})
    assert layout.read_info() == {"data": {"checksum": "abc"}}  # the old file, intact and valid JSON
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.json", "run.json"]  # no temporary file left
    monkeypatch.undo()
    layout.update_info(compress={"size_mb": 1.0})
    assert layout.read_info() == {"data": {"checksum": "abc"}, "compress": {"size_mb": 1.0}}


def test_rebuilding_keeps_the_old_folder_until_the_new_one_is_complete(tmp_path: Path) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "students" / "L1"
    target.mkdir(parents=True)
    (target / "run.json").write_text("old")

    with pytest.raises(RuntimeError, match="training failed"), rebuilding(target):
        target.mkdir()
        (target / "run.json").write_text("half")
        raise RuntimeError("training failed")
    assert (target / "run.json").read_text() == "old"

    with rebuilding(target):
        assert not target.exists()  # built from scratch, the old one aside
        target.mkdir()
        (target / "run.json").write_text("new")
    assert (target / "run.json").read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["L1"]


def test_rebuilding_a_folder_that_does_not_exist_yet_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "classifier"
    with pytest.raises(RuntimeError), rebuilding(target):
        target.mkdir()
        raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("call", "where"),
    [("update_info(**entry)", lambda info: info), ('merge_into_section("students", **entry)', lambda i: i["students"])],
    ids=["sections", "entries-of-one-section"],
)
def test_commands_updating_run_json_at_once_keep_every_section(
    tmp_path: Path, call: str, where: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Six processes add 25 entries each at the same moment: a read-modify-write without a lock loses some."""
    go = tmp_path / "go"
    script = f"""
import os, sys, time
from pathlib import Path
from hybridroute.runs import RunLayout
while not os.path.exists({str(go)!r}):
    time.sleep(0.001)
for j in range(25):
    entry = {{f"p{{sys.argv[1]}}_{{j}}": {{"j": j}}}}
    RunLayout(Path({str(tmp_path / "run")!r})).{call}
"""
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], stderr=subprocess.PIPE, text=True) for i in range(6)
    ]
    time.sleep(0.5)  # let every child reach the starting line
    go.touch()
    errors = [child.communicate(timeout=120)[1] for child in children]
    assert all(child.returncode == 0 for child in children), errors
    info = RunLayout(tmp_path / "run").read_info()
    assert sorted(where(info)) == sorted(f"p{i}_{j}" for i in range(6) for j in range(25))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.json"]  # no lock or temporary file left


# ---------------------------------------------------------------- a rebuild killed halfway


REBUILDER = """
import sys, time
from pathlib import Path
from hybridroute.runs import rebuilding
target = Path(sys.argv[1])
with rebuilding(target):
    (target / "sub").mkdir(parents=True)
    (target / "weights.bin").write_text("partial")
    print("building", flush=True)
    time.sleep(120)
"""


def start_rebuild(target: Path) -> subprocess.Popen[str]:
    """A process inside ``rebuilding(target)`` with a partial new folder written, blocked there until killed."""
    child = subprocess.Popen([sys.executable, "-c", REBUILDER, str(target)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "building"
    return child


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("where", ["classifier", "students/L3"])
def test_opening_the_run_after_a_rebuild_killed_halfway_restores_the_previous_folder(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "run"
    target = root / where
    target.mkdir(parents=True)
    (target / "weights.bin").write_text("old")
    child = start_rebuild(target)
    try:
        assert RunLayout.open(root).root == root  # opened while the rebuild runs: it is not touched
        assert (target / "weights.bin").read_text() == "partial"
    finally:
        kill(child)
    assert listing(target.parent) == sorted([f".{target.name}-aside", f".{target.name}.lock", target.name])

    with caplog.at_level(logging.WARNING, logger="hybridroute.runs"):
        RunLayout.open(root)
    assert (target / "weights.bin").read_text() == "old" and listing(target) == ["weights.bin"]
    assert listing(target.parent) == [target.name]  # partial folder, old folder's aside name and lock all gone
    assert [r.getMessage() for r in caplog.records] == [
        f"{target}: restored the previous folder; the rebuild that replaced it was interrupted (partial one removed)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hybridroute.runs"):
        RunLayout.open(root)
    assert caplog.records == []  # nothing left to recover


def test_a_first_build_killed_halfway_leaves_no_partial_folder_after_the_next_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "classifier"
    kill(start_rebuild(target))
    assert (target / "weights.bin").read_text() == "partial"
    with caplog.at_level(logging.WARNING, logger="hybridroute.runs"):
        RunLayout.open(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"{target}: removed a partial folder; the build that made it was interrupted"
    ]


def test_the_next_rebuild_after_a_kill_keeps_the_previous_folder_if_it_fails_too(tmp_path: Path) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "classifier"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    kill(start_rebuild(target))
    with pytest.raises(RuntimeError, match="again"), rebuilding(target):
        raise RuntimeError("failed again")
    assert (target / "weights.bin").read_text() == "old" and listing(tmp_path) == ["classifier"]


def test_a_kill_after_the_rebuild_finished_keeps_the_new_folder(tmp_path: Path) -> None:
    """Killed while the old folder (already renamed ``.NAME-discarded``) was being deleted: the new one stays."""
    target = tmp_path / "classifier"
    target.mkdir()
    (target / "weights.bin").write_text("new")
    old = tmp_path / ".classifier-discarded"
    old.mkdir()
    (old / "half-deleted").write_text("old")
    RunLayout.open(tmp_path)
    assert (target / "weights.bin").read_text() == "new" and listing(tmp_path) == ["classifier"]


def test_an_old_folder_set_aside_without_a_new_one_is_put_back(tmp_path: Path) -> None:
    """Killed right after the old folder was renamed aside, before the block made anything."""
    aside = tmp_path / ".edge-aside"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    RunLayout.open(tmp_path)
    assert listing(tmp_path) == ["edge"] and (tmp_path / "edge" / "manifest.json").read_text() == "{}"


def test_a_folder_set_aside_as_a_link_is_put_back_as_the_link(tmp_path: Path) -> None:
    kept = tmp_path / "models" / "v1"
    kept.mkdir(parents=True)
    root = tmp_path / "run"
    (root / "partial-edge").mkdir(parents=True)
    (root / ".edge-aside").symlink_to(kept, target_is_directory=True)
    (root / "partial-edge").rename(root / "edge")
    RunLayout.open(root)
    assert (root / "edge").is_symlink() and (root / "edge").resolve() == kept.resolve() and listing(root) == ["edge"]


def test_a_second_rebuild_waits_for_the_first_then_starts_from_the_previous_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "classifier"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    child, seen = start_rebuild(target), []

    def second() -> None:
        with rebuilding(target):
            seen.append(listing(tmp_path))  # the killed rebuild settled first: the old folder is the one aside
            target.mkdir()
            (target / "weights.bin").write_text("new")

    with caplog.at_level(logging.WARNING, logger="hybridroute.runs"):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        assert seen == [] and thread.is_alive()  # waiting for the lock
        kill(child)
        thread.join(30)
    assert seen == [[".classifier-aside", ".classifier.lock"]]
    assert (target / "weights.bin").read_text() == "new" and listing(tmp_path) == ["classifier"]
    assert any("waiting for it to finish" in r.getMessage() for r in caplog.records)


def test_an_install_of_two_folders_killed_between_them_is_undone_for_both(tmp_path: Path) -> None:
    """Killed after the FP32 bundle was renamed in and the edge one set aside: the next open puts both old back."""
    for name, content in ((".onnx_fp32-aside", "old fp32"), ("onnx_fp32", "new fp32"), (".edge-aside", "old")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx").write_text(content)
    RunLayout.open(tmp_path)
    assert listing(tmp_path) == ["edge", "onnx_fp32"]
    assert (tmp_path / "onnx_fp32" / "model.onnx").read_text() == "old fp32"
    assert (tmp_path / "edge" / "model.onnx").read_text() == "old"


def test_only_opening_a_run_recovers_constructing_a_layout_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / ".edge-aside").mkdir()
    RunLayout(tmp_path)
    assert listing(tmp_path) == [".edge-aside"]
    RunLayout.open(tmp_path)
    assert listing(tmp_path) == ["edge"]


# ---------------------------------------------------------------- a run folder written by an earlier version


def test_an_earlier_versions_old_copy_beside_a_complete_folder_is_kept_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Earlier versions left ``.NAME-previous`` beside a complete new folder when deleting the old one was cut off."""
    edge = tmp_path / "edge"
    edge.mkdir()
    for name in ("model.onnx", "tokenizer.json", "manifest.json"):
        (edge / name).write_text("new")
    (tmp_path / ".edge-previous").mkdir()
    (tmp_path / ".edge-previous" / "tokenizer.json").write_text("old, half deleted")
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hybridroute.runs"):
            RunLayout.open(tmp_path)
        assert listing(edge) == ["manifest.json", "model.onnx", "tokenizer.json"]
        assert (edge / "model.onnx").read_text() == "new" and listing(tmp_path) == [".edge-previous", "edge"]
        [message] = [r.getMessage() for r in caplog.records]
        assert message.startswith(f"{edge}: .edge-previous beside it was left by an earlier version") and (
            "both are kept" in message and "delete .edge-previous" in message
        )


def test_an_earlier_versions_old_folder_without_a_new_one_is_put_back(tmp_path: Path) -> None:
    (tmp_path / ".classifier-previous").mkdir()
    (tmp_path / ".classifier-previous" / "weights.bin").write_text("old")
    RunLayout.open(tmp_path)
    assert listing(tmp_path) == ["classifier"] and (tmp_path / "classifier" / "weights.bin").read_text() == "old"


def test_an_earlier_versions_placeholder_beside_a_partial_first_build_goes_with_it(tmp_path: Path) -> None:
    """The version that introduced placeholders wrote an empty ``.NAME-previous`` file: "there was no folder"."""
    (tmp_path / "classifier").mkdir()
    (tmp_path / "classifier" / "weights.bin").write_text("partial")
    (tmp_path / ".classifier-previous").touch()
    RunLayout.open(tmp_path)
    assert listing(tmp_path) == []


# ---------------------------------------------------------------- a run folder this process cannot write


AS_ANOTHER_USER = (
    """
import logging, os, sys
from pathlib import Path
from hybridroute.runs import RunLayout
logging.basicConfig(level=logging.WARNING, format="%(message)s")
"""
    + BECOME_ANOTHER_USER
)


def as_another_user(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (with ``RunLayout`` imported and warnings going to stderr) as another user."""
    return subprocess.run(
        [sys.executable, "-c", AS_ANOTHER_USER + code], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    with folder_anyone_may_enter() as folder:
        yield folder
        set_writable(folder, True)  # what a test made read-only, so that it can be removed


def set_writable(tree: Path, writable: bool) -> None:
    """Give every folder and file under ``tree`` (itself included) write permission for its owner, or take it."""
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            folder = path.is_dir()
            path.chmod((0o755 if folder else 0o644) if writable else (0o555 if folder else 0o444))


def test_another_user_opens_the_run_while_a_rebuild_runs_without_touching_it(open_tmp: Path) -> None:
    """The edge service (a user that may only read the run) starts while ``finetune`` rebuilds the classifier."""
    root = open_tmp / "run"
    target = root / "classifier"
    target.mkdir(parents=True)
    (target / "weights.bin").write_text("old")
    child = start_rebuild(target)
    try:
        before = listing(root)
        set_writable(root, False)  # the lock file the rebuild holds included: it can only be opened to read
        result = as_another_user(f"RunLayout.open(Path({str(root)!r}))\nprint('opened')")
        assert (result.returncode, result.stdout, result.stderr) == (0, "opened\n", "")  # nothing to say: it runs
        assert listing(root) == before and (target / "weights.bin").read_text() == "partial"
    finally:
        kill(child)


def test_another_user_opens_the_run_after_a_killed_rebuild_and_leaves_it_saying_so(open_tmp: Path) -> None:
    root = open_tmp / "run"
    target = root / "classifier"
    target.mkdir(parents=True)
    (target / "weights.bin").write_text("old")
    kill(start_rebuild(target))
    before = listing(root)
    assert before == [".classifier-aside", ".classifier.lock", "classifier"]
    set_writable(root, False)
    result = as_another_user(f"RunLayout.open(Path({str(root)!r}))\nprint('opened')")
    assert (result.returncode, result.stdout) == (0, "opened\n"), result.stderr
    [warning] = result.stderr.splitlines()
    assert warning.startswith(
        f"{target}: found .classifier-aside (the previous folder, set aside) beside classifier; left as it is: "
        "this process cannot change it ("
    )
    assert "rename" not in warning and "delete" not in warning  # no advice to act while it cannot be told safe
    assert listing(root) == before and (target / "weights.bin").read_text() == "partial"
    set_writable(root, True)
    RunLayout.open(root)  # one who can write settles it
    assert listing(root) == ["classifier"] and (target / "weights.bin").read_text() == "old"


def test_in_a_shared_run_folder_another_users_leftover_locks_stop_nobody(open_tmp: Path) -> None:
    """A team's run folder (anyone may create and delete in it): a teammate's command was killed mid-install and
    mid-update, leaving its lock files, which this user may not write, and the old edge bundle set aside."""
    root = open_tmp / "run"
    (root / ".edge-aside").mkdir(parents=True)
    (root / ".edge-aside" / "model.onnx").write_text("old")
    for lock in (".edge.lock", ".run.json.lock"):
        (root / lock).touch()
        (root / lock).chmod(0o444)
    root.chmod(0o777)
    result = as_another_user(f"RunLayout.open(Path({str(root)!r})).update_info(b=2)\nprint('updated')")
    assert (result.returncode, result.stdout) == (0, "updated\n"), result.stderr
    assert listing(root) == ["edge", "run.json"] and (root / "edge" / "model.onnx").read_text() == "old"
    assert RunLayout(root).read_info() == {"b": 2}


def _stored_split(root: Path) -> RunLayout:
    from hybridroute.data import LabelledTexts, Split
    from hybridroute.runs import save_split

    layout = RunLayout(root)
    data = LabelledTexts(("good", "bad"), ("pos", "neg"))
    save_split(layout, Split(data, data, ("neg", "pos")))
    return layout


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("train.jsonl", b'{"text": "cut', r"train\.jsonl: line 3 is not a .*JSON object"),
        ("validation.jsonl", b'["a list"]\n', r"validation\.jsonl: line 3 is not a"),
        ("train.jsonl", b'{"text": 1, "label": "pos"}\n', r"train\.jsonl: line 3 has a text or label that is not"),
        ("labels.json", b"nope", r"labels\.json: not valid JSON"),
        ("labels.json", b"\xff", r"labels\.json: not UTF-8 text"),
    ],
)
def test_a_damaged_stored_split_is_an_artifact_error_naming_the_file(
    tmp_path: Path, name: str, damage: bytes, message: str
) -> None:
    from hybridroute.runs import load_saved_split

    layout = _stored_split(tmp_path)
    path = layout.data_dir / name
    path.write_bytes((path.read_bytes() if name.endswith(".jsonl") else b"") + damage)
    with pytest.raises(ArtifactError, match=message):
        load_saved_split(layout)


def test_a_stored_split_missing_a_file_names_it(tmp_path: Path) -> None:
    from hybridroute.runs import load_saved_split

    layout = _stored_split(tmp_path)
    (layout.data_dir / "validation.jsonl").unlink()
    with pytest.raises(ArtifactError, match=r"validation\.jsonl: the file is missing"):
        load_saved_split(layout)


@pytest.mark.parametrize(("content", "message"), [(b'{"a": 1\xff}', "not UTF-8 text"), (b"[1]", "expected a JSON")])
def test_an_undecodable_run_json_is_an_artifact_error(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "run.json").write_bytes(content)
    with pytest.raises(ArtifactError, match=f"run.json: {message}"):
        RunLayout(tmp_path).read_info()


def test_a_split_that_fails_halfway_leaves_the_previous_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridroute import runs
    from hybridroute.data import LabelledTexts, Split

    layout = _stored_split(tmp_path)
    before = {p.name: p.read_bytes() for p in layout.data_dir.iterdir()}
    real = runs._write_jsonl

    def fail_on_validation(path: Path, data: LabelledTexts) -> None:
        if path.name == "validation.jsonl":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(runs, "_write_jsonl", fail_on_validation)
    other = LabelledTexts(("x", "y"), ("u", "v"))
    with pytest.raises(OSError, match="disk full"):
        runs.save_split(layout, Split(other, other, ("u", "v")))
    assert {p.name: p.read_bytes() for p in layout.data_dir.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staging or lock left behind but data


# ---------------------------------------------------------------- skipped steps, files given as run folders


def test_drop_sections_removes_only_the_named_sections(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    assert layout.drop_sections("adapt") == {}  # no run.json yet: nothing to drop, nothing made
    assert not layout.root.exists()
    layout.update_info(adapt={"loss_before": 3.0}, data={"train": 10}, finetune={"val_accuracy": 0.9})
    assert layout.drop_sections("adapt", "cloud") == {"data": {"train": 10}, "finetune": {"val_accuracy": 0.9}}
    assert layout.read_info() == {"data": {"train": 10}, "finetune": {"val_accuracy": 0.9}}


def test_rebuilding_nothing_drops_the_folder_only_when_the_block_succeeds(tmp_path: Path) -> None:
    from hybridroute.runs import rebuilding

    target = tmp_path / "adapted"
    target.mkdir()
    (target / "model.bin").write_text("old")
    with pytest.raises(RuntimeError, match="fine-tuning failed"), rebuilding(target):
        assert not target.exists()  # set aside while the block runs: no step in it can pick it up
        raise RuntimeError("fine-tuning failed")
    assert (target / "model.bin").read_text() == "old"
    with rebuilding(target):
        pass
    assert list(tmp_path.iterdir()) == []  # gone, and nothing set aside left behind
    with rebuilding(target):  # nothing to remove is fine too
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_file_given_as_the_run_folder_is_refused_saying_so(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    RunLayout(tmp_path).require_folder()
    RunLayout(tmp_path / "new").require_folder()  # a new folder is made later
    with pytest.raises(ArtifactError) as info:
        RunLayout(notes).require_folder()
    assert str(info.value).startswith(f"--out must be a run folder; {notes} is a file")


def test_a_missing_split_says_what_the_command_needs(tmp_path: Path) -> None:
    from hybridroute.errors import DataError
    from hybridroute.runs import load_saved_split

    with pytest.raises(DataError) as info:
        load_saved_split(RunLayout(tmp_path), "give --data FILE")
    assert str(info.value) == f"{tmp_path} has no stored data split: give --data FILE"
    with pytest.raises(DataError, match=f"run `hybridroute finetune --data FILE --out {tmp_path}` or"):
        load_saved_split(RunLayout(tmp_path))


@pytest.mark.parametrize("command", ["finetune", "adapt"])
def test_finetune_or_adapt_on_a_new_run_folder_without_data_asks_for_data(tmp_path: Path, command: str) -> None:
    out = tmp_path / "new"
    result = CliRunner().invoke(main, [command, "--out", str(out)])
    assert result.exit_code != 0
    assert f"Error: {out} has no stored data split: give --data FILE" in result.output
    assert "(a new run folder has no stored split)" in result.output
    assert "run `hybridroute finetune" not in result.output  # not "run finetune" to a finetune user


@pytest.mark.parametrize(
    "args",
    [
        ["finetune", "--out", "{file}", "--data", "{data}"],
        ["finetune", "--out", "{file}"],
        ["adapt", "--out", "{file}", "--data", "{data}"],
        ["train", "--out", "{file}", "--data", "{data}", "--no-adapt"],
        ["train", "--out", "{file}", "--data", "{data}", "--tier", "cloud"],
    ],
    ids=lambda args: " ".join(a for a in args if not a.startswith("{")),
)
def test_a_file_as_out_is_refused_as_a_file_not_as_file_exists(
    tmp_path: Path, args: list[str], toy_csv_writer: Callable[..., Path]
) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    data = toy_csv_writer(tmp_path / "toy.csv")
    result = CliRunner().invoke(main, [a.format(file=file, data=data) for a in args])
    assert result.exit_code != 0
    assert f"Error: --out must be a run folder; {file} is a file" in result.output
    assert "File exists" not in result.output
    assert file.read_text() == "mine"
