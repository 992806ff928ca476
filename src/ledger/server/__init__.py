"""The google.longrunning Operations REST service (`ledger serve`, the `ledger[server]` extra).

routes.py maps HTTP rules to calls, access.py proves who is calling, ../policies.py says what they
may do, app.py runs the calls on the ledger, errors.py and openapi.py describe the wire. grpc/
serves the same calls over gRPC beside it (`--grpc-port`, the `ledger[grpc]` extra).
"""
