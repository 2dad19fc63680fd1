"""Run an exported SavedModel the way a server would, without tf_stacksr (used by test_export.py).

    python tests/serving_probe.py SAVED_MODEL_DIR INPUTS.npz RESULTS.npz

Loads the model with plain TensorFlow in this fresh process and records, for the test to check:
  direct      serving_default on the LR faces (TF2 `tf.saved_model.load`)
  proto       the same through a PredictRequest built by tools/serving_client.py, its
              TensorProto converted back with `tf.make_ndarray`, as TF Serving does
  encoded     the `encoded` signature on PNG bytes of the faces, outputs decoded
  stage_*     the `all_stages` outputs
  empty       serving_default on an empty batch
  error_*     messages for bad inputs: through the TF2 signature (argument binding) and through
              a TF1 Session fed like TF Serving feeds it, which checks dtype but not shape, so
              only the signature's own run-time checks stand between a bad request and the model
  bomb_*      with INPUTS.npz's `bomb` (a small PNG declaring a huge image): the `encoded`
              signature's message for it and how much this process's peak memory grew meanwhile
and asserts at the end that tf_stacksr was never imported.
"""

import json
import os
import resource
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf.config_pb2 import CallableOptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import serving_client  # noqa: E402


def _error(fn) -> str:
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - the message is the result
        return f"{type(err).__name__}: {err}"
    return "NO ERROR"


def session_feeds(path: str, signature: str, cases: dict) -> dict:
    """Feed each case's array to `signature` in a TF1 Session, bypassing Python shape checks."""
    results = {}
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def[signature]
        (feed,), fetch = [t.name for t in sig.inputs.values()], [t.name for t in sig.outputs.values()]
        run = sess._make_callable_from_options(CallableOptions(feed=[feed], fetch=fetch))
        for name, value in cases.items():
            results[name] = _error(lambda: run(value))
    return results


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(path: str, inputs_path: str, results_path: str) -> None:
    inputs = np.load(inputs_path)
    faces = inputs["lr_faces"]
    lr = faces.shape[1]
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    results = {"direct": serve(lr_faces=tf.constant(faces))["sr_faces"].numpy()}

    request = serving_client.uint8_request(faces, model="stacksr")
    arrays = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    results["proto"] = loaded.signatures[request.model_spec.signature_name](
        **{k: tf.constant(v) for k, v in arrays.items()})["sr_faces"].numpy()

    pngs = [tf.io.encode_png(face).numpy() for face in faces]
    request = serving_client.encoded_request(pngs, model="stacksr")
    arrays = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    out = loaded.signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in arrays.items()})
    results["encoded"] = np.stack([tf.io.decode_png(png).numpy() for png in out["png_bytes"].numpy()])

    if "all_stages" in loaded.signatures:
        for key, value in loaded.signatures["all_stages"](lr_faces=tf.constant(faces)).items():
            results[key] = value.numpy()

    results["empty"] = serve(lr_faces=tf.constant(faces[:0]))["sr_faces"].numpy()

    errors = {}
    if "bomb" in inputs:
        before = peak_rss_mb()
        errors["bomb_error"] = _error(lambda: loaded.signatures["encoded"](
            image_bytes=tf.constant([inputs["bomb"].tobytes()])))
        errors["bomb_rss_growth_mb"] = peak_rss_mb() - before
    errors.update({
        "error_tf2_float": _error(lambda: serve(lr_faces=tf.constant(faces.astype(np.float32)))),
        "error_tf2_size": _error(lambda: serve(lr_faces=tf.constant(faces[:, : lr // 2, : lr // 2]))),
        "error_tf2_rank": _error(lambda: serve(lr_faces=tf.constant(faces[0]))),
    })
    errors.update({f"error_session_{k}": v for k, v in session_feeds(path, "serving_default", {
        "size": faces[:, : lr // 2, : lr // 2], "rank": faces[0], "channels": np.concatenate([faces, faces[..., :1]], -1),
        "float": faces.astype(np.float32), "good": faces, "empty": faces[:0],
        "batch": np.concatenate([faces, faces[:1]])}).items()})
    wrong_size_png = tf.io.encode_png(faces[0, : lr // 2]).numpy()
    grey_png = tf.io.encode_png(faces[0, ..., :1]).numpy()
    rgba_jpeg_pair = [tf.io.encode_png(tf.concat([faces[0], faces[0, ..., :1]], -1)).numpy(),
                      tf.io.encode_jpeg(faces[1]).numpy()]
    errors.update({f"error_encoded_{k}": v for k, v in session_feeds(path, "encoded", {
        "size": np.array([wrong_size_png], dtype=object), "corrupt": np.array([b"not an image"], dtype=object),
        "rank": np.array([[pngs[0]]], dtype=object), "good": np.array(pngs[:1], dtype=object),
        "grey": np.array([grey_png], dtype=object), "rgba_and_jpeg": np.array(rgba_jpeg_pair, dtype=object),
        "empty": np.array([], dtype=object), "batch": np.array(pngs + pngs[:1], dtype=object)}
        | ({"bomb": np.array([inputs["bomb"].tobytes()], dtype=object)} if "bomb" in inputs else {})).items()})
    errors["imported_tf_stacksr"] = str(any(m == "tf_stacksr" or m.startswith("tf_stacksr.") for m in sys.modules))
    np.savez(results_path, **results, errors=json.dumps(errors))


if __name__ == "__main__":
    main(*sys.argv[1:])
