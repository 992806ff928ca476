"""The rules of operations, with no I/O: the aggregate and its events, commands, snapshots, rendering,
names, values, timestamps, the hash chain and the errors every layer raises. Nothing here imports
anything of the ledger outside this package."""
