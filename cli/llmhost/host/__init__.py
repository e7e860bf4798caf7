"""What a host is: read live or from a snapshot (hostio), parsed into facts."""
