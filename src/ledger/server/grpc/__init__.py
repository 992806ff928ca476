"""google.longrunning.Operations and google.iam.v1.IAMPolicy over gRPC (`ledger serve --grpc-port`).

It runs in the HTTP server's process and event loop and shares its ledgers, tokens and policy cache,
so both ports answer alike and a policy set through one applies at once on the other. anys.py turns
the JSON the ledger keeps into protobuf messages (every Any packed from its type's descriptor),
servicers.py answers the calls, server.py builds the server (limits, TLS, health, reflection).
"""
