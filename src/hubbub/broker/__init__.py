"""Brokers carry room events between the nodes of a cluster (see `base.Broker`)."""
