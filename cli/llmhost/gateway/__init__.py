"""The TLS gateway's client keys and client registry (the nginx side lives in roles/gateway)."""
