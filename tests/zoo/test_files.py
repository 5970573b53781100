"""Writing aside and renaming: a kill at any moment leaves the old file whole, and no litter behind."""
import os
import socket

from zoo import files


def test_a_partial_file_of_a_dead_process_is_removed_and_a_living_one_s_kept(tmp_path, dead_pid):
    dead_prefix = files.partial_prefix().replace(str(os.getpid()), str(dead_pid), 1)
    (tmp_path / f"{dead_prefix}model.keras").write_text("cut short by a kill")
    (tmp_path / "checkpoints" / "best").mkdir(parents=True)
    (tmp_path / "checkpoints" / "best" / f"{dead_prefix}best.json").write_text("cut short")
    (tmp_path / f"{files.partial_prefix()}config.json").write_text("being written")
    (tmp_path / "model.keras").write_text("the whole one")
    files.remove_leftovers(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [f"{files.partial_prefix()}config.json", "checkpoints", "model.keras"]
    assert os.listdir(tmp_path / "checkpoints" / "best") == []


def test_what_another_host_writes_aside_is_kept_whatever_its_pid(tmp_path, dead_pid):
    # A folder shared by hosts (an export directory that TF Serving reads): their pids are not this host's.
    others = [tmp_path / f".partial-{dead_pid}@{host}@x1" for host in
              (f"not-{socket.gethostname()}", f"{socket.gethostname()}-2")]  # a pod and its namesake-2
    for other in others:
        other.mkdir()
    files.remove_leftovers(str(tmp_path))
    assert all(other.exists() for other in others)


def test_leftovers_named_before_names_had_a_host_are_removed_as_this_host_s(tmp_path, dead_pid):
    (tmp_path / f".partial-{dead_pid}-model.keras").write_text("cut short by a kill")
    files.remove_leftovers(str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_written_aside_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text("old")
    try:
        with files.written_aside(str(path)) as partial:
            with open(partial, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["eval.json"]
    files.write_text(str(path), "new")
    assert path.read_text() == "new"
