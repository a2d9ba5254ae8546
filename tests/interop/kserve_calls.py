"""KServe's Python SDK against the server, in a process of its own: KServe
and tritonclient register the same `inference.*` protobuf messages, which
one process cannot hold twice.

    python kserve_calls.py GRPC_ADDR HTTP_ADDR

Sends the first four MNIST test digits once over gRPC and once over REST
and prints, as JSON, the digits each answered, readiness, and KServe's
`grpc_predict_v2.proto` descriptor (base64) for test_oip.py to compare with
proto/inference.
"""
import asyncio
import base64
import json
import sys

import numpy as np
from google.protobuf import descriptor_pb2
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.grpc import grpc_predict_v2_pb2

from common import load_test_images


def digits(response):
    return next(o for o in response.outputs if o.name == "digit").as_numpy().tolist()


async def main(grpc_addr, http_addr):
    images, _ = load_test_images(4)
    pixels = np.frombuffer(b"".join(images), dtype=np.uint8).reshape(4, 784)
    grpc_client = InferenceGRPCClient(grpc_addr)
    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    base = f"http://{http_addr}"
    try:
        tensor = InferInput("pixels", [4, 784], "UINT8")
        tensor.set_data_from_numpy(pixels, binary_data=False)
        over_grpc = await grpc_client.infer(InferRequest(model_name="mnist", infer_inputs=[tensor], request_id="g"))
        over_rest = await rest.infer(base, InferRequest(model_name="mnist", infer_inputs=[tensor], request_id="r"),
                                     model_name="mnist")
        descriptor = descriptor_pb2.FileDescriptorProto()
        grpc_predict_v2_pb2.DESCRIPTOR.CopyToProto(descriptor)
        return {
            "grpc_model_ready": await grpc_client.is_model_ready("mnist"),
            "rest_server_ready": await rest.is_server_ready(base),
            "rest_server_live": await rest.is_server_live(base),
            "grpc_digits": digits(over_grpc),
            "rest_digits": digits(over_rest),
            "descriptor": base64.b64encode(descriptor.SerializeToString()).decode(),
        }
    finally:
        await rest.close()
        await grpc_client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
