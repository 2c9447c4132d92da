"""Message stores: where messages get their ids and live on for history and replay."""
