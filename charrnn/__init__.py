"""charrnn: character-level LSTM/GRU/RNN language models."""

__version__ = "0.1.0"
