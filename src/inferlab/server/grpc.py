"""The grpc.aio server: registers the V2 servicer and reflection, applies message-size limits and TLS.

It runs on the same event loop as the HTTP server, so both share one InferenceService (and whatever
loop-bound queues its schedulers keep).
"""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection

from inferlab.config import ServerConfig
from inferlab.server.proto import inference_pb2
from inferlab.server.protocols.kserve_grpc import SERVICE_NAME, KServeServicer, rpc_handler
from inferlab.server.service import InferenceService


async def start_grpc(service: InferenceService, config: ServerConfig) -> tuple[grpc.aio.Server, int]:
    """Start serving on `config.grpc_port` (0 picks a free port); returns the server and its bound port.

    Requests over `grpc_max_message_bytes` are refused by gRPC itself with RESOURCE_EXHAUSTED
    ("Received message larger than max (N vs. LIMIT)"); responses over it get RESOURCE_EXHAUSTED from
    the servicer, with a message that names the limit and the flag.
    """
    limit = config.grpc_max_message_bytes
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    )
    servicer = KServeServicer(service, config.auth_token, config.protect_inference, limit)
    server.add_generic_rpc_handlers((rpc_handler(servicer),))
    reflection.enable_server_reflection([SERVICE_NAME, reflection.SERVICE_NAME], server, pool=inference_pb2.POOL)
    address = f"{config.host}:{config.grpc_port or 0}"
    try:
        if config.tls_cert and config.tls_key:
            credentials = grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc's "Failed to bind to address"
        raise OSError(f"cannot listen for gRPC on {address}: is the port in use? (--grpc-port)") from exc
    await server.start()
    return server, port
