"""Peer servers the benchmark compares Hubbub with; only the FastAPI one is Python."""
