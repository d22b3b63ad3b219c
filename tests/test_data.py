import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import data
from charrnn.data import StreamBatcher, Vocab, encode_corpus, read_text
from charrnn.errors import CharRNNError


def write(tmp_path, text, name="c.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_any_unicode_round_trips(text):
    vocab = Vocab(sorted(set(text)))
    assert vocab.decode(vocab.encode(text)) == text


def test_emoji_accents_cjk_are_single_characters(tmp_path):
    text = "café 🎻 漢字 naïve 🎻\n" * 50
    corpus = encode_corpus(write(tmp_path, text), tmp_path / "cache")
    assert set(corpus.vocab.chars) == set(text)
    assert "🎻" in corpus.vocab.chars  # one vocabulary entry, not four bytes
    assert corpus.vocab.decode(corpus.ids) == text
    assert sum(corpus.counts) == len(text)
    assert corpus.counts[corpus.vocab.index["🎻"]] == 100


def test_invalid_utf8_names_the_byte_offset(tmp_path, monkeypatch):
    path = tmp_path / "bad.txt"
    path.write_bytes("é".encode() * 10 + b"\xff" + b"abc")
    with pytest.raises(CharRNNError, match="byte offset 20"):
        encode_corpus(path, tmp_path / "cache")
    # the offset is right across chunk boundaries too, even with a character split between chunks
    monkeypatch.setattr(data, "CHUNK_BYTES", 3)
    with pytest.raises(CharRNNError, match="byte offset 20"):
        encode_corpus(path, tmp_path / "cache")


def test_other_encodings(tmp_path):
    path = write(tmp_path, "Grüße, naïve café\n" * 10, encoding="latin-1")
    with pytest.raises(CharRNNError, match="--encoding"):
        encode_corpus(path, tmp_path / "cache")
    corpus = encode_corpus(path, tmp_path / "cache", encoding="latin-1")
    assert "ü" in corpus.vocab.chars
    with pytest.raises(CharRNNError, match="unknown encoding"):
        encode_corpus(path, tmp_path / "cache", encoding="no-such-codec")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(CharRNNError, match="empty"):
        encode_corpus(write(tmp_path, ""), tmp_path / "cache")
    with pytest.raises(CharRNNError, match="not found"):
        encode_corpus(tmp_path / "nope.txt", tmp_path / "cache")
    with pytest.raises(CharRNNError, match="not found"):
        read_text(tmp_path / "nope.txt")


def test_smallest_dtype_and_memory_map(tmp_path):
    small = encode_corpus(write(tmp_path, "abc" * 100, "a.txt"), tmp_path / "cache")
    assert small.ids.dtype == np.uint8 and isinstance(small.ids, np.memmap)
    wide = "".join(chr(0x4E00 + i) for i in range(300))
    big = encode_corpus(write(tmp_path, wide * 3, "b.txt"), tmp_path / "cache")
    assert big.ids.dtype == np.uint16 and len(big.vocab) == 300
    assert big.vocab.decode(big.ids) == wide * 3
    assert data.smallest_dtype(70_000) == np.uint32


def test_unchanged_file_is_not_encoded_again(tmp_path, monkeypatch):
    path = write(tmp_path, "hello world\n" * 100)
    encode_corpus(path, tmp_path / "cache")

    def fail(*args):
        raise AssertionError("re-encoded an unchanged file")

    monkeypatch.setattr(data, "_build_cache", fail)
    again = encode_corpus(path, tmp_path / "cache")
    assert again.vocab.decode(again.ids[:12]) == "hello world\n"


def test_changed_file_gets_a_fresh_cache(tmp_path):
    path = write(tmp_path, "aaaa bbbb\n" * 50)
    first = encode_corpus(path, tmp_path / "cache")
    path.write_text("xyz\n" * 50)
    second = encode_corpus(path, tmp_path / "cache")
    assert second.sha256 != first.sha256
    assert second.vocab.chars == ["\n", "x", "y", "z"]


def test_incomplete_cache_entry_is_rebuilt(tmp_path):
    path = write(tmp_path, "abcdef\n" * 50)
    encode_corpus(path, tmp_path / "cache")
    (bin_file,) = (tmp_path / "cache").glob("*.bin")
    bin_file.write_bytes(bin_file.read_bytes()[:10])  # a cache cut short (e.g. a full disk)
    corpus = encode_corpus(path, tmp_path / "cache")
    assert corpus.vocab.decode(corpus.ids) == "abcdef\n" * 50


def test_split_is_in_file_order(tmp_path):
    corpus = encode_corpus(write(tmp_path, "".join(chr(65 + i % 26) for i in range(1000))), tmp_path / "cache")
    train, val, test = corpus.split(0.1, 0.05)
    assert (len(train), len(val), len(test)) == (850, 100, 50)
    assert np.array_equal(np.concatenate([train, val, test]), corpus.ids)


def test_batches_are_contiguous_streams():
    ids = np.arange(1000, dtype=np.uint16)
    b = StreamBatcher(ids, batch_size=4, seq_len=10)
    x0, y0 = b.get(0)
    x1, _ = b.get(1)
    assert x0.shape == (4, 10) and x0.dtype.is_floating_point is False
    assert (y0[:, :-1] == x0[:, 1:]).all() and (y0 == x0 + 1).all()  # targets are the next characters
    assert (x1[:, 0] == x0[:, -1] + 1).all()  # row b of the next batch continues row b
    assert x0[1, 0] - x0[0, 0] == (1000 - 1) // 4  # rows start one stream length apart
    assert b.batches_per_epoch == ((1000 - 1) // 4) // 10


def test_ranks_share_the_global_streams():
    ids = np.arange(2000, dtype=np.uint16)
    whole = StreamBatcher(ids, 4, 10).get(3)[0]
    parts = [StreamBatcher(ids, 4, 10, rank=r, world_size=2).get(3)[0] for r in (0, 1)]
    assert (parts[0] == whole[0::2]).all() and (parts[1] == whole[1::2]).all()


def test_too_short_for_one_batch_says_how_long():
    with pytest.raises(CharRNNError, match=r"at least 4,128"):
        StreamBatcher(np.zeros(100, dtype=np.uint8), batch_size=32, seq_len=128)


def test_binary_file_is_refused_with_the_offset(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 4)  # bytes 0x00-0x7f are valid ASCII; 0x80 is the first bad one
    with pytest.raises(CharRNNError, match="byte offset 128"):
        encode_corpus(path, tmp_path / "cache")


def test_a_hundred_thousand_distinct_characters(tmp_path):
    text = "".join(chr(0x10000 + i) for i in range(100_000))
    corpus = encode_corpus(write(tmp_path, text * 2), tmp_path / "cache")
    assert len(corpus.vocab) == 100_000 and corpus.ids.dtype == np.uint32
    assert corpus.vocab.decode(corpus.ids[-5:]) == text[-5:]
