"""The model kinds: each one a module with its config, its network and its fast single-step path."""
