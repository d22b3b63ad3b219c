"""Hand-written tunes the folk tests share (made up for these tests, not tunes of any collection), each
with its form checked by hand, and a way to move a tune into another key."""

from __future__ import annotations

from pathlib import Path

from charrnn.training.trainer import train

from conftest import tiny_config

# Two parts of 8 bars, each repeated and each begun with a one-note pickup (the short last bar completes
# it); G major, ends on G; from D (62) to g (79).
PICKUP_JIG = """\
X:1
T:Pickup Jig
R:jig
M:6/8
L:1/8
K:G
D|GAB cBA|BGE D2D|GAB cde|dBG A2D|
GAB cBA|BGE DEF|GBd gdB|AGF G2:|
|:d|gfe dBG|AGE DEF|GBd gfe|dBG A3|
gfe dBA|BGE DEF|GBd cAF|AGF G2:|"""

# Two parts of 8 bars with first and second endings (the first part's last bar, the second part's last
# two) and triplets; A dorian, ends on A; from E (64) to a (81).
ENDING_REEL = """\
X:2
T:Ending Reel
R:reel
M:4/4
L:1/8
K:Ador
|:EA (3AAA eAcA|GBdB GBdB|EA (3AAA eAce|dBGB A2Bd|
EA (3AAA eAcA|GBdB GBdB|EA (3AAA eAce|1 dBGB A2Bd:|2 dBGB A4||
|:e2ae g2ed|(3Bcd ef gedB|e2ae g2ed|BdgB A2Bd|
e2ae g2ed|(3Bcd ef gedB|1 e2ae g2ed|BdgB A2Bd:|2 e2ag e2dB|BdgB A4|]"""

# Two parts of 8 bars, not repeated; E minor, but it ends on G, the minor third; from E (64) to g (79).
PLAIN_AIR = """\
X:3
T:Plain Air
M:3/4
L:1/8
K:Em
E2 G2 B2|e4 d2|B2 A2 G2|F6|E2 G2 B2|e4 d2|B2 A2 F2|E6||
g2 f2 e2|d4 B2|c2 B2 A2|B6|g2 f2 e2|d4 B2|A2 F2 A2|G6|]"""

# One part of 7 bars, repeated, after a pickup written before the |: ; D major, ends on D; from E (64) to g (79).
SHORT_POLKA = """\
X:4
T:Short Polka
M:2/4
L:1/16
K:D
A2|:d2fd A2FA|d2fd A2FA|B2gB A2fA|G2FG E2A2|d2fd A2FA|B2gB A2fA|d2c2 d4:|"""

_LETTERS = "CDEFGABcdefgab"


def up_a_step(abc: str, key: str) -> str:
    """The tune one scale step higher under the key signature `key` (for a tune in G with no accidentals
    and no note above b: A major puts it a whole tone higher, note for note)."""
    header, _, body = abc.partition("K:G\n")
    moved = "".join(_LETTERS[_LETTERS.index(c) + 1] if c in _LETTERS else c for c in body)
    return f"{header}K:{key}\n{moved}"


def train_tiny_folk(folder: Path, tunes: tuple[str, ...], count: int) -> Path:
    """A tiny model trained in seconds on `count` tunes cycling through `tunes` (each without its X: line);
    returns its run directory."""
    corpus = folder / "tunes.abc"
    corpus.write_text("\n\n".join(f"X:{i + 1}\n{tunes[i % len(tunes)]}" for i in range(count)) + "\n", encoding="utf-8")
    train(tiny_config(corpus, folder / "run", hidden=64, max_steps=300, lr=1e-2, eval_every=100, threads=1),
          progress=False)
    return folder / "run"
