"""Who is online in which room, per username, on one node or across a cluster."""
