"""The pair files: bad lines, tokens, splits by hash, several references, bucketed batches, metrics."""

import pytest

from charrnn.errors import CharRNNError
from charrnn.models.seq2seq import BOS, EOS, PAD
from charrnn.seq2seq.data import PairBatches, make_batch, read_pairs, split_of
from charrnn.seq2seq.metrics import edit_distance, score, strip_stress


def write(tmp_path, data: bytes):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("line, problem", [
    (b"no tab here", "found 0 tabs"),
    (b"a\tb\tc", "found 2 tabs"),
    (b"\tb", "empty source"),
    (b"a\t   ", "empty target"),
    (b"caf\xe9\tx", "not valid UTF-8"),
])
def test_a_bad_line_is_one_error_with_its_line_number(tmp_path, line, problem):
    path = write(tmp_path, b"ab\tba\n\ncd\tdc\n" + line + b"\nef\tfe\n")
    with pytest.raises(CharRNNError, match=rf"pairs.tsv:4: .*{problem}.*--skip-bad-lines"):
        read_pairs(path)
    pairs = read_pairs(path, skip_bad_lines=True)
    assert pairs.skipped == 1 and pairs.sources == [("a", "b"), ("c", "d"), ("e", "f")]


def test_a_file_without_pairs_is_an_error(tmp_path):
    with pytest.raises(CharRNNError, match="holds no"):
        read_pairs(write(tmp_path, b"\n\n"))


def test_space_tokens_and_crlf(tmp_path):
    pairs = read_pairs(write(tmp_path, b"hello\tHH AH0  L OW1\r\n"), target_tokens="space")
    assert pairs.sources == [tuple("hello")] and pairs.targets == [("HH", "AH0", "L", "OW1")]


def test_split_by_hash_keeps_a_source_in_one_split_and_is_stable(tmp_path):
    lines = [f"w{i}\tx{j}" for i in range(400) for j in range(2)]  # every source twice
    pairs = read_pairs(write(tmp_path, "\n".join(lines).encode()))
    parts = pairs.split(0.1, 0.1)
    seen = {name: set(p.sources) for name, p in parts.items()}
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])
    assert sum(map(len, parts.values())) == len(pairs) and 40 < len(parts["val"]) < 130
    assert split_of("w7", 0.1, 0.1) == split_of("w7", 0.1, 0.1)
    assert [split_of(w, 0.05, 0.05) for w in ("hello", "world", "pytorch")] == ["train", "train", "val"]  # pinned


def test_several_targets_are_all_references(tmp_path):
    pairs = read_pairs(write(tmp_path, b"read\tR IY1 D\nread\tR EH1 D\n"), target_tokens="space")
    assert len(pairs) == 2 and pairs.references()[tuple("read")] == [("R", "IY1", "D"), ("R", "EH1", "D")]
    found = score([("R", "EH1", "D")], [pairs.references()[tuple("read")]])
    assert found.exact == 1 and found.ter == 0


def test_batches_pad_and_mark_the_ends():
    batch = make_batch([[3, 4, 5], [6]], [[7], [8, 9]])
    assert batch.source.tolist() == [[3, 4, 5], [6, PAD, PAD]] and batch.lengths.tolist() == [3, 1]
    assert batch.target_in.tolist() == [[BOS, 7, PAD], [BOS, 8, 9]]
    assert batch.target_out.tolist() == [[7, EOS, PAD], [8, 9, EOS]]


def test_batches_group_similar_lengths_and_depend_on_the_step_only():
    sources = [[3] * (1 + i % 20) for i in range(2000)]
    targets = [[4] * (1 + i % 7) for i in range(2000)]
    batches = PairBatches(sources, targets, batch_size=20, seed=1)
    spread = [int(b.lengths.max() - b.lengths.min()) for b in (batches.get(s) for s in range(50))]
    assert sum(spread) / len(spread) < 4  # sorted within pools: far less than the 19 of random batches
    again = PairBatches(sources, targets, batch_size=20, seed=1)
    assert again.get(137).source.tolist() == batches.get(137).source.tolist()
    assert batches.get(0).source.tolist() != batches.get(batches.batches_per_epoch).source.tolist()
    with pytest.raises(CharRNNError, match="fewer than --batch-size"):
        PairBatches(sources[:5], targets[:5], batch_size=20, seed=1)


def test_metrics():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    found = score([("a", "b"), ("a", "c", "d")], [[("a", "b")], [("a", "b", "d"), ("x",)]])
    assert found.exact == 0.5 and found.wer == 0.5 and found.ter == 1 / 5
    assert strip_stress(("AH0", "L", "OW1")) == ("AH", "L", "OW")
    assert score([("AH1",)], [[("AH0",)]], ignore_stress=True).exact == 1
