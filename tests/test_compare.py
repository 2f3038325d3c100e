"""mtlsearch compare: groupings per run and layer, pairwise and planted adjusted Rand index, a search directory's
best trials, the written files, and bad input in one line with exit status 2."""
import json
import shutil

import pytest

from mtlsearch.cli import main
from mtlsearch.run import train_run
from mtlsearch.groupings import compare

DATASET = "synthetic:own=0,n_samples=1200"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train_run(DATASET, "hard_sharing", root / "hs", epochs=1, quiet=True)
    train_run(DATASET, "task_affinity", root / "ta", epochs=2, quiet=True,
              settings={"switch_epoch": 1, "affinity_every": 2})
    return root


def test_groupings_and_their_adjusted_rand_index(runs, tmp_path):
    result = compare([runs / "ta", runs / "hs"], out=tmp_path / "out")
    ta, hs = result["runs"]
    assert ta["strategy"] == "task_affinity" and hs["strategy"] == "hard_sharing"
    assert ta["planted_ari"] == 1.0 and ta["groups"] == result["planted"] and ta["layer"] == 2
    assert hs["groups"] == [result["tasks"]] and hs["planted_ari"] == 0.0  # one trunk: every task together
    assert ta["groups_per_layer"]["1"] == ta["groups"] and len(ta["groups_per_layer"]["3"]) == 8
    assert result["pairwise_ari"] == [[1.0, 0.0], [0.0, 1.0]]
    assert ta["test_score"] > 0.5 and hs["params"] > 0
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["pairwise_ari"] == result["pairwise_ari"]
    assert (tmp_path / "out" / "compare.png").stat().st_size > 10_000


def test_a_search_directory_stands_for_its_best_trial_of_each_strategy(runs, tmp_path):
    search = tmp_path / "my_search"
    for strategy, run in (("hard_sharing", "hs"), ("task_affinity", "ta")):
        shutil.copytree(runs / run, search / "best" / strategy)
    result = compare([search])
    assert [r["label"] for r in result["runs"]] == ["my_search/hard_sharing", "my_search/task_affinity"]
    assert result["pairwise_ari"][0][1] == 0.0


def test_the_command_prints_and_refuses_to_overwrite(runs, tmp_path, capsys):
    assert main(["compare", str(runs / "ta"), str(runs / "hs"), "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "planted groups" in printed and "adjusted Rand index between runs' groupings" in printed
    assert "ta (task_affinity, layer 2)" in printed and "planted ARI 1.00" in printed
    assert main(["compare", str(runs / "ta"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not empty; pass --overwrite" in err
    assert main(["compare", str(runs / "ta"), "--out", str(tmp_path / "c"), "--overwrite"]) == 0


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    other = tmp_path / "other"
    train_run("synthetic:n_tasks=6,n_groups=3,n_samples=600", "hard_sharing", other, epochs=1, quiet=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (([str(tmp_path / "missing")], "no such directory"),
                          ([str(empty)], "holds no structure.json"),
                          ([str(runs / "ta"), str(other)], "compare runs on the same problem")):
        assert main(["compare", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
