"""The read side: views derived only from the event log, kept current by the projection engine.
All SQL over the views is here; the connection and the dialects are storage's.

- `engine`: pulls the log in batches into the views, tracking its position in the same transaction;
  rebuilds views into new tables and swaps them in.
- `views`: the operations view (current Operation JSON per operation, deleted ones kept as DELETED)
  and the names readers query it by.
- `history`: past states (a version, a time, a position) folded from the operation's events.
- `rows`: the columns and JSON bytes of a view row.
- `filters`, `compiler`: AIP-160 filters parsed, then compiled to parameterised SQL.
- `queries`: get, as-of and list queries with AIP-158 keyset page tokens; the rows audit compares.
- `feeds`: export's operations feed (from the view) and intervals feed (folded from the log).
"""
