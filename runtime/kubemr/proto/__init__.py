"""Generated gRPC/protobuf stubs for kubemr (``make proto`` regenerates them; do not edit)."""
