"""One module per wire protocol: each decodes into messages, calls the service, encodes the reply."""
