#!/usr/bin/env bash
# Regenerate the committed gRPC stubs from src/inferlab/server/proto/inference.proto (needs grpcio-tools).
#
# The descriptors go into a private pool (POOL in inference_pb2), not protobuf's default one:
# tritonclient.grpc registers the same `inference.*` names in the default pool, and a process that
# imports both (our tests, any user script) would otherwise fail with "duplicate symbol".
set -euo pipefail
cd "$(dirname "$0")/../src"
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. inferlab/server/proto/inference.proto
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(/' \
    inferlab/server/proto/inference_pb2.py
grep -q '^POOL = ' inferlab/server/proto/inference_pb2.py || { echo "gen_proto.sh: private-pool patch did not apply" >&2; exit 1; }
sed -i 's/^DESCRIPTOR: _descriptor.FileDescriptor$/DESCRIPTOR: _descriptor.FileDescriptor\nPOOL: _descriptor_pool.DescriptorPool/' \
    inferlab/server/proto/inference_pb2.pyi
grep -q '^from google.protobuf import descriptor_pool' inferlab/server/proto/inference_pb2.pyi ||
    sed -i 's/^from google.protobuf import descriptor as _descriptor$/&\nfrom google.protobuf import descriptor_pool as _descriptor_pool/' \
        inferlab/server/proto/inference_pb2.pyi
