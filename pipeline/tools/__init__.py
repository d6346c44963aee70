"""The only code in Drydock that starts processes: one runner and thin tool wrappers."""
