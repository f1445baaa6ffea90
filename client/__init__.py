"""Command-line and Python client for a running asl-serve TorchServe (reads key_file.json itself)."""
