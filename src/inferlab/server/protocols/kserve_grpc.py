"""KServe V2 over gRPC: the `inference.GRPCInferenceService` servicer, protobuf messages <-> messages.

Inference requests carry tensors either typed (`contents`, one repeated field per datatype family) or
raw (`raw_input_contents`, decoded with `np.frombuffer`); a request answered in the form it came in.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from inferlab.errors import InferlabError, InvalidInput, PayloadTooLarge, Unauthorized
from inferlab.messages import InferRequest, InferResponse
from inferlab.server.proto import inference_pb2 as pb
from inferlab.server.protocols.kserve_binary import array_from_raw, raw_from_array
from inferlab.server.service import InferenceService
from inferlab.server.status import grpc_code
from inferlab.tensors import Array, v2_datatype, v2_dtype

log = logging.getLogger("inferlab.server")

SERVICE_NAME = "inference.GRPCInferenceService"

# Which InferTensorContents field holds each datatype (FP16/BF16 have none: they travel raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Method = Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]


def _rpc(method: _Method[_Req, _Resp]) -> _Method[_Req, _Resp]:
    """Turn inferlab errors into their gRPC status (status.py's table); anything else is INTERNAL, logged."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
        try:
            if isinstance(request, _Malformed):
                raise InvalidInput(request.message)
            return await method(self, request, context)
        except InferlabError as exc:
            await context.abort(grpc_code(exc), str(exc))
            raise  # abort() raises; this line only tells the type checker so
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
            raise

    return wrapper


@dataclass(frozen=True, slots=True)
class _Malformed:
    """What the deserializer hands on for bytes that are not the expected message, so the RPC can say why."""

    message: str


def _parser(message_class: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return _Malformed(f"the request is not a valid {message_class.DESCRIPTOR.full_name} message: {exc}")

    return parse


def rpc_handler(servicer: KServeServicer) -> grpc.GenericRpcHandler:
    """The servicer's methods as gRPC handlers; a malformed request becomes INVALID_ARGUMENT, not UNKNOWN."""
    methods = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        m.name: (grpc.stream_stream_rpc_method_handler if m.client_streaming else grpc.unary_unary_rpc_method_handler)(
            getattr(servicer, m.name),
            request_deserializer=_parser(getattr(pb, m.input_type.name)),
            response_serializer=lambda message: message.SerializeToString(),
        )
        for m in methods
    })


class KServeServicer:
    """Every RPC calls the InferenceService; none touches a runtime or the store directly."""

    def __init__(
        self, service: InferenceService, auth_token: str | None = None, protect_inference: bool = False,
        max_message_bytes: int | None = None,
    ) -> None:
        self._service = service
        self._max_message_bytes = max_message_bytes
        self._auth_token = auth_token
        self._protect_inference = protect_inference

    @_rpc
    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    @_rpc
    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self._service.ready())

    @_rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ModelReadyResponse(ready=self._service.model_ready(request.name, request.version or None))

    @_rpc
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        meta = self._service.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    @_rpc
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        meta = self._service.model_metadata(request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]], outputs=[tensor(**t) for t in meta["outputs"]],
        )

    @_rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> Any:
        received = perf_counter()
        self._authorize(context, inference=True)
        infer_request, classification = decode_infer_request(request)
        infer_request.timings.received = received
        response = await self._service.infer(infer_request, classification)
        message = encode_infer_response(response, raw=bool(request.raw_input_contents))
        size = message.ByteSize() if self._max_message_bytes is not None else 0
        if self._max_message_bytes is not None and size > self._max_message_bytes:  # checked before `finish`
            raise PayloadTooLarge(  # counts it as a success
                f"the response of {size} bytes is over the server's gRPC message limit of "
                f"{self._max_message_bytes} bytes (--grpc-max-message-mb); ask for fewer outputs or a smaller batch"
            )
        context.set_trailing_metadata([(k.lower(), v) for k, v in self._service.finish(response).items()])
        return message

    async def ModelStreamInfer(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One response per request, in order; a bad request is answered with its error, the stream goes on."""
        try:
            self._authorize(context, inference=True)
        except Unauthorized as exc:
            await context.abort(grpc_code(exc), str(exc))
        async for request in requests:
            try:
                if isinstance(request, _Malformed):
                    raise InvalidInput(request.message)
                received = perf_counter()
                infer_request, classification = decode_infer_request(request)
                infer_request.timings.received = received
                response = await self._service.infer(infer_request, classification)
                raw = bool(request.raw_input_contents)
                message = encode_infer_response(response, raw=raw)
                self._service.finish(response)
                yield pb.ModelStreamInferResponse(infer_response=message)
            except InferlabError as exc:
                yield pb.ModelStreamInferResponse(error_message=str(exc))
            except Exception as exc:
                log.exception("unexpected error in ModelStreamInfer")
                yield pb.ModelStreamInferResponse(error_message=f"internal error: {type(exc).__name__}: {exc}")

    @_rpc
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext) -> Any:
        rows = self._service.repository_index(ready_only=request.ready)
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**row) for row in rows])

    @_rpc
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        """Load from the repository, or, with `file:<version>/model.onnx` parameters, upload then load."""
        self._authorize(context)
        files = {k.removeprefix("file:"): v.bytes_param for k, v in request.parameters.items() if k.startswith("file:")}
        if not files:
            await asyncio.to_thread(self._service.load, request.model_name)
            return pb.RepositoryModelLoadResponse()
        models = [path for path in files if path.endswith("/model.onnx")]
        if len(models) != 1:
            raise InvalidInput(f"a load with files needs exactly one 'file:<version>/model.onnx'; got {sorted(files)}")
        version = models[0].partition("/")[0]
        config = request.parameters["config"].string_param.encode() if "config" in request.parameters else None
        await asyncio.to_thread(
            self._service.upload, request.model_name, files[models[0]], files.get("labels.txt"), config, version
        )
        return pb.RepositoryModelLoadResponse()

    @_rpc
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        self._authorize(context)
        await asyncio.to_thread(self._service.unload, request.model_name)  # closes sessions, may take the sync lock
        return pb.RepositoryModelUnloadResponse()

    def _authorize(self, context: grpc.aio.ServicerContext, inference: bool = False) -> None:
        """The HTTP bearer-token rule, read from the `authorization` metadata."""
        if self._auth_token is None or (inference and not self._protect_inference):
            return
        metadata = dict(context.invocation_metadata() or ())
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._auth_token.encode()):
            raise Unauthorized("this operation needs 'authorization: Bearer <token>' metadata with the server's token")


def decode_infer_request(request: pb.ModelInferRequest) -> tuple[InferRequest, dict[str, int]]:
    """A ModelInferRequest as an InferRequest plus the per-output `classification` counts."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    inputs: dict[str, Array] = {}
    for index, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise InvalidInput(f"input '{tensor.name}' is given more than once")
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidInput(f"input '{tensor.name}': shape {list(shape)} has a negative dimension")
        if raw:
            if tensor.HasField("contents"):
                raise InvalidInput(f"input '{tensor.name}' sets contents although raw_input_contents is used")
            inputs[tensor.name] = array_from_raw(tensor.name, tensor.datatype, shape, raw[index])
        else:
            inputs[tensor.name] = _from_contents(tensor, shape)
    classification: dict[str, int] = {}
    for output in request.outputs:
        if "classification" in output.parameters:
            classification[output.name] = _parameter(output.parameters["classification"])
    return (
        InferRequest(
            model=request.model_name,
            version=request.model_version or None,
            inputs=inputs,
            outputs=[o.name for o in request.outputs] or None,
            id=request.id or None,
            parameters={k: _parameter(v) for k, v in request.parameters.items()},
        ),
        classification,
    )


def encode_infer_response(response: InferResponse, raw: bool) -> pb.ModelInferResponse:
    """Raw output bytes when the request was raw (or an output has no typed field), typed contents otherwise."""
    datatypes = {name: v2_datatype(array.dtype) for name, array in response.outputs.items()}
    raw = raw or any(dt not in CONTENTS_FIELD for dt in datatypes.values())
    message = pb.ModelInferResponse(model_name=response.model, model_version=response.version, id=response.id or "")
    for name, array in response.outputs.items():
        tensor = message.outputs.add(name=name, datatype=datatypes[name], shape=array.shape)
        if raw:
            message.raw_output_contents.append(raw_from_array(array))
        else:
            flat = array.reshape(-1)
            values = [v if isinstance(v, bytes) else str(v).encode() for v in flat] if flat.dtype.kind in "OSU" \
                else flat.tolist()
            getattr(tensor.contents, CONTENTS_FIELD[datatypes[name]]).extend(values)
    return message


def _from_contents(tensor: pb.ModelInferRequest.InferInputTensor, shape: tuple[int, ...]) -> Array:
    dtype = v2_dtype(tensor.datatype)
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidInput(
            f"input '{tensor.name}': {tensor.datatype} has no typed contents; send it in raw_input_contents"
        )
    values = getattr(tensor.contents, field)
    count = int(np.prod(shape))
    if len(values) != count:
        raise InvalidInput(
            f"input '{tensor.name}': shape {list(shape)} needs {count} values, but contents.{field} has {len(values)}"
        )
    if dtype.kind == "O":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    try:
        return np.array(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"input '{tensor.name}': values do not fit {tensor.datatype}: {exc}") from None


def _parameter(value: pb.InferParameter) -> Any:
    choice = value.WhichOneof("parameter_choice")
    return None if choice is None else getattr(value, choice)
