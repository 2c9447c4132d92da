"""Hubbub: a real-time chat server."""
