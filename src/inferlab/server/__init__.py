"""The server: the protocol-neutral service and the adapters that speak each wire protocol."""
