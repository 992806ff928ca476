"""Everything that knows a database driver or eventsourcing's table: backends, connections, dialects,
the codec of stored events, the mapping of storage errors to google.rpc codes, and the event log."""
