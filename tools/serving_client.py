#!/usr/bin/env python3
"""Send LR face images to a TF Serving instance of an exported tf-stacksr model; save the SR faces.

    python tools/serving_client.py --grpc=localhost:8500 --model=stacksr -o sr/ face1.png face2.jpg
    python tools/serving_client.py --rest=http://localhost:8501 --model=stacksr -o sr/ face1.png

Every input must already be an aligned LR face of the model's LR size (see docs/serving.md;
for whole photos use `tf-stacksr enhance`). Requests use the `encoded` signature: the files'
bytes go to the server unchanged and PNG bytes come back, so the client needs no image
library. Standalone on purpose (copy it anywhere): needs tensorflow-serving-api for gRPC and
only the standard library for REST. The names below mirror `tf_stacksr/signatures.py`.

Limits the model enforces (docs/serving.md): at most `max_batch` faces a request (export
--max_batch, default 256; this client sends larger sets in several requests of --max_batch);
each file must be a JPEG, PNG, BMP or GIF whose header declares exactly the LR size (checked
before decoding); a GIF may hold at most 2048 + 2 * lr * lr bytes. An empty request returns
an empty batch.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.request

UINT8_SIGNATURE, UINT8_INPUT, UINT8_OUTPUT = "serving_default", "lr_faces", "sr_faces"
ENCODED_SIGNATURE, ENCODED_INPUT, ENCODED_OUTPUT = "encoded", "image_bytes", "png_bytes"
MAX_BATCH = 256  # the export's default cap on faces a request (its metadata's "max_batch")


# ---- gRPC: PredictRequest protos ----------------------------------------------------------
def uint8_request(faces, model: str, version: int | None = None):
    """PredictRequest for `serving_default`: `faces` is a uint8 array [N, lr, lr, 3]."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"expected uint8 faces [N, lr, lr, 3], got {faces.dtype} {faces.shape}")
    request = _request(predict_pb2, model, UINT8_SIGNATURE, version)
    request.inputs[UINT8_INPUT].CopyFrom(tf.make_tensor_proto(faces, dtype=tf.uint8))
    request.output_filter.append(UINT8_OUTPUT)
    return request


def encoded_request(images: list[bytes], model: str, version: int | None = None):
    """PredictRequest for `encoded`: `images` are the bytes of JPEG/PNG files of LR faces."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = _request(predict_pb2, model, ENCODED_SIGNATURE, version)
    request.inputs[ENCODED_INPUT].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)]))
    request.output_filter.append(ENCODED_OUTPUT)
    return request


def _request(predict_pb2, model: str, signature: str, version: int | None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    return request


def png_outputs(response) -> list[bytes]:
    """PNG bytes of each SR face in an `encoded` PredictResponse."""
    return list(response.outputs[ENCODED_OUTPUT].string_val)


def predict_grpc(server: str, request, timeout: float = 60.0):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout)


# ---- REST: :predict JSON ------------------------------------------------------------------
def encoded_rest_body(images: list[bytes]) -> dict:
    """`:predict` JSON for `encoded` (row format; binary strings travel as {"b64": ...})."""
    return {"signature_name": ENCODED_SIGNATURE,
            "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]}


def uint8_rest_body(faces) -> dict:
    """`:predict` JSON for `serving_default`: one nested [lr][lr][3] list of ints per face."""
    return {"signature_name": UINT8_SIGNATURE, "instances": [face.tolist() for face in faces]}


def predict_rest(base_url: str, model: str, body: dict, version: int | None = None, timeout: float = 60.0) -> dict:
    url = f"{base_url.rstrip('/')}/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)


def png_predictions(reply: dict) -> list[bytes]:
    """PNG bytes of each SR face in an `encoded` REST reply ({"predictions": [{"b64": ...}, ...]})."""
    return [base64.b64decode(p["b64"]) for p in reply["predictions"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--grpc", help="host:port of TF Serving's gRPC API (default port 8500)")
    target.add_argument("--rest", help="base URL of TF Serving's REST API, e.g. http://localhost:8501")
    parser.add_argument("--model", default="stacksr", help="model name in TF Serving (MODEL_NAME / models.config)")
    parser.add_argument("--version", type=int, help="model version (default: the newest served)")
    parser.add_argument("--max_batch", type=int, default=MAX_BATCH,
                        help="most faces a request; the model's export --max_batch (default %(default)s)")
    parser.add_argument("-o", "--output", required=True, help="folder for the SR faces (<input name>.png)")
    parser.add_argument("faces", nargs="+", help="aligned LR face images (JPEG/PNG) of the model's LR size")
    args = parser.parse_args(argv)
    if args.max_batch < 1:
        parser.error(f"--max_batch={args.max_batch}: expected a positive number of faces per request")
    images = []
    for path in args.faces:
        with open(path, "rb") as fh:
            images.append(fh.read())
    pngs = []
    for start in range(0, len(images), args.max_batch):  # the model refuses larger requests
        chunk = images[start: start + args.max_batch]
        if args.grpc:
            pngs += png_outputs(predict_grpc(args.grpc, encoded_request(chunk, args.model, args.version)))
        else:
            pngs += png_predictions(predict_rest(args.rest, args.model, encoded_rest_body(chunk), args.version))
    os.makedirs(args.output, exist_ok=True)
    for path, png in zip(args.faces, pngs):
        out = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        with open(out, "wb") as fh:
            fh.write(png)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
